// Package remote reaches the socketley daemon of another machine over the
// user's own ssh: socketley -H ssh://[user@]host[:port] runs
//
//	ssh -o BatchMode=yes [-p PORT] [-l USER] HOST -- socketley dial-stdio [GLOBALS]
//
// and speaks the control protocol over that process's stdin and stdout
// (see Dial). Authentication, host keys, agents and ~/.ssh/config are the
// user's ssh setup; the remote daemon sees the remote user's peer
// credentials, as for a local client. It imports none of the module's
// packages, so that the CLI may use it without the control layer depending
// on it.
package remote

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// EnvHost is the environment variable that gives -H's default.
const EnvHost = "SOCKETLEY_HOST"

// EnvSSH names the ssh program to run instead of "ssh" (a path, or a name
// looked up in $PATH; one word, no arguments: a wrapper script can add
// options such as -F CONFIG).
const EnvSSH = "SOCKETLEY_SSH"

// Host is a parsed ssh://[user@]host[:port] address.
type Host struct {
	// User is the remote login name ("" for ssh's default).
	User string
	// Name is the host name or address (IPv6 without brackets).
	Name string
	// Port is the ssh port (0 for ssh's default).
	Port int
}

// Parse parses ssh://[user@]host[:port]. Only the ssh scheme is known; the
// host is required; a port must be 1-65535; a path (but a lone "/"), a
// query, a fragment and a password are refused. The error says what is
// wrong, without naming the flag.
func Parse(s string) (Host, error) {
	const form = "give ssh://[user@]host[:port], such as ssh://admin@web1.example.com or ssh://10.0.0.5:2222"
	if s == "" {
		return Host{}, fmt.Errorf("the host is empty: %s", form)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Host{}, fmt.Errorf("%q has no scheme: %s", s, form)
	}
	if scheme != "ssh" {
		return Host{}, fmt.Errorf("%q: scheme %q is not supported, only ssh: %s", s, scheme, form)
	}
	if strings.ContainsAny(rest, "?#") {
		return Host{}, fmt.Errorf("%q: a query or fragment is not allowed: %s", s, form)
	}
	u, err := url.Parse("ssh://" + strings.TrimSuffix(rest, "/"))
	if err != nil {
		return Host{}, fmt.Errorf("%q is not an ssh address: %w", s, err)
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Host{}, fmt.Errorf("%q: a path is not allowed (the daemon's socket is chosen with --socket, --user or --system): %s", s, form)
	}
	h := Host{Name: u.Hostname()}
	if u.User != nil {
		if _, set := u.User.Password(); set {
			return Host{}, fmt.Errorf("%q: a password is not allowed in the address; ssh asks for credentials itself (keys or an agent: the connection runs with BatchMode=yes)", s)
		}
		h.User = u.User.Username()
		if h.User == "" || strings.HasPrefix(h.User, "-") {
			return Host{}, fmt.Errorf("%q: the user name is empty or starts with '-': %s", s, form)
		}
	}
	if h.Name == "" || strings.HasPrefix(h.Name, "-") {
		return Host{}, fmt.Errorf("%q: the host is missing or starts with '-': %s", s, form)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Host{}, fmt.Errorf("%q: port %q is not a port: give a number from 1 to 65535", s, p)
		}
		h.Port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return Host{}, fmt.Errorf("%q: the port after ':' is empty: give a number from 1 to 65535, or leave ':' out for ssh's default", s)
	}
	return h, nil
}

// String returns h as ssh://[user@]host[:port].
func (h Host) String() string {
	u := url.URL{Scheme: "ssh", Host: h.Name}
	if strings.Contains(h.Name, ":") {
		u.Host = "[" + h.Name + "]"
	}
	if h.Port != 0 {
		u.Host += ":" + strconv.Itoa(h.Port)
	}
	if h.User != "" {
		u.User = url.User(h.User)
	}
	return u.String()
}

// SSHArgs returns the arguments of ssh (without the program) that run the
// remote command words on h: BatchMode=yes (no password or host-key
// prompt: the CLI owns the terminal), the port and user when given, then
// the host, "--" and the words, each quoted for the remote shell (ssh joins
// them with spaces and the remote shell splits them again).
func (h Host) SSHArgs(words []string) []string {
	args := []string{"-o", "BatchMode=yes"}
	if h.Port != 0 {
		args = append(args, "-p", strconv.Itoa(h.Port))
	}
	if h.User != "" {
		args = append(args, "-l", h.User)
	}
	args = append(args, h.Name, "--")
	for _, w := range words {
		args = append(args, ShellQuote(w))
	}
	return args
}

// ShellQuote quotes s for a POSIX shell when it needs it.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:@%,=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ErrSSH is matched (errors.Is) by every *SSHError.
var ErrSSH = errors.New("ssh connection failed")
