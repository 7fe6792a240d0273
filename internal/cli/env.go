package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/sdk"
)

// envCmd prints the shell export that points programs at the daemon in
// use: eval "$(socketley env)".
func (a *app) envCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "env",
		Short: "Print export SOCKETLEY_SOCKET=... for the daemon in use: eval \"$(socketley env)\"",
		Long: `Print a shell line that sets SOCKETLEY_SOCKET to the control socket of the
daemon this command uses (--socket, $SOCKETLEY_SOCKET, --user/--system, else
the system socket when usable, otherwise the user socket):

  eval "$(socketley env)"          # or: eval "$(socketley --user env)"

Programs you start yourself from that shell then find the daemon: the C++
SDK looks only at $SOCKETLEY_SOCKET, /run/socketley/socketley.sock and
/tmp/socketley.sock, so with the user daemon its Attach fails unless
SOCKETLEY_SOCKET is set. When no daemon answers on that socket, a warning
goes to stderr (the line is printed all the same).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sock := paths.Socket(a.socket, a.mode())
			fmt.Fprintf(a.stdio.Out, "export %s=%s\n", sdk.EnvSocket, shellQuote(sock))
			if _, err := a.client().Do(cmd.Context(), wire.Request{Cmd: wire.CmdVersion}); err != nil {
				fmt.Fprintf(a.stdio.Err, "socketley: warning: no daemon answers at %s yet (start it with: socketley daemon --user, or the system service)\n", sock)
			}
			return nil
		},
	}
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
