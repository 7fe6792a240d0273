package cli

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Usage errors name the argument or flag that is wrong, say what it
// accepts and end with the command's usage line; cobra's and strconv's own
// wording never reaches the user.

// usageLine is the usage line of cmd, as printed after a usage error.
func usageLine(cmd *cobra.Command) string {
	return "usage: " + cmd.UseLine()
}

// argsErr is a usage error about cmd's positional arguments.
func argsErr(cmd *cobra.Command, format string, args ...any) error {
	return usageErr("%s: %s\n%s", cmd.Name(), fmt.Sprintf(format, args...), usageLine(cmd))
}

// namesArgs requires at least one runtime name or pattern.
func namesArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return argsErr(cmd, "give at least one runtime name or glob pattern (such as myapp or 'web-*')")
	}
	return nil
}

// noArgs refuses any positional argument.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return argsErr(cmd, "unexpected argument %q: %s takes no arguments, only flags", args[0], cmd.Name())
	}
	return nil
}

// exactArgs requires exactly n arguments, described by what.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < n:
			return argsErr(cmd, "missing %s: give %s", argWord(n, len(args)), what)
		case len(args) > n:
			return argsErr(cmd, "unexpected argument %q: give only %s", args[n], what)
		}
		return nil
	}
}

func argWord(want, got int) string {
	if want == 1 {
		return "argument"
	}
	return fmt.Sprintf("arguments (%d of %d given)", got, want)
}

// flagName renders a flag as the user may type it: -n/--lines or --name.
func flagName(f *pflag.Flag) string {
	if f == nil {
		return "the flag"
	}
	if f.Shorthand != "" {
		return "-" + f.Shorthand + "/--" + f.Name
	}
	return "--" + f.Name
}

// accepts says what a flag of type typ accepts.
func accepts(f *pflag.Flag) string {
	if f == nil {
		return ""
	}
	switch f.Value.Type() {
	case "int":
		return "a whole number such as " + orDefault(f.DefValue, "3")
	case "duration":
		return "a duration such as 500ms, 10s or 1m30s"
	case "bool":
		return "true or false (or the flag alone)"
	}
	return f.Usage
}

func orDefault(v, d string) string {
	if v == "" || v == "0" {
		return d
	}
	return v
}

// flagUsageErr rewords pflag's parse errors (cobra's FlagErrorFunc).
func flagUsageErr(cmd *cobra.Command, err error) error {
	var (
		inv  *pflag.InvalidValueError
		req  *pflag.ValueRequiredError
		nex  *pflag.NotExistError
		synt *pflag.InvalidSyntaxError
		msg  string
	)
	switch {
	case errors.As(err, &inv):
		msg = fmt.Sprintf("%s %q is not valid: give %s", flagName(inv.GetFlag()), inv.GetValue(), accepts(inv.GetFlag()))
	case errors.As(err, &req):
		msg = fmt.Sprintf("%s needs a value: %s", flagName(req.GetFlag()), accepts(req.GetFlag()))
	case errors.As(err, &nex):
		name := "--" + nex.GetSpecifiedName()
		if s := nex.GetSpecifiedShortnames(); s != "" {
			name = "-" + s
		}
		msg = fmt.Sprintf("unknown flag %s; socketley %s --help lists the flags", name, cmd.Name())
	case errors.As(err, &synt):
		msg = fmt.Sprintf("bad flag syntax %q: flags are -x, -x VALUE, --name or --name=VALUE", synt.GetSpecifiedFlag())
	default:
		msg = err.Error()
	}
	return usageErr("%s: %s\n%s", cmd.Name(), msg, usageLine(cmd))
}

// unknownCommand matches cobra's error for an unknown command; compiled at
// the first use, not at the start of every command.
var unknownCommand = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^unknown command "(.*)" for "(.*)"`)
})

// rewordCobra rewrites the errors cobra produces itself (an unknown
// command) as usage errors; other errors are returned as they are.
func rewordCobra(root *cobra.Command, err error) error {
	m := unknownCommand().FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	var names []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	msg := fmt.Sprintf("unknown command %q: the commands are %s", m[1], strings.Join(names, ", "))
	if s := root.SuggestionsFor(m[1]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", s[0])
	}
	return usageErr("%s\nusage: socketley COMMAND [ARGS...] [flags]; socketley --help describes each", msg)
}

// withUsage appends cmd's usage line to a usage error (exit 1) that lacks it.
func withUsage(cmd *cobra.Command, err error) error {
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || strings.Contains(err.Error(), "\nusage: ") {
		return err
	}
	return &exitError{code: 1, err: fmt.Errorf("%w\n%s", ee.err, usageLine(cmd))}
}
