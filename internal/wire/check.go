package wire

import (
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Defaults and bounds of an add request. The daemon fills the defaults in;
// the CLI shows them as its flags' defaults, and show words them.
const (
	// DefaultRestartMaxDelay caps the crash backoff when add gives no
	// --restart-max-delay.
	DefaultRestartMaxDelay = 30 * time.Second
	// DefaultRestartReset is how long a run must last for the crash
	// backoff to start over when add gives no --restart-reset.
	DefaultRestartReset = 10 * time.Second
	// MinRestartReset is the shortest --restart-reset: a run shorter than a
	// second cannot count as healthy.
	MinRestartReset = time.Second
	// DefaultStopTimeout is TimeoutStopSec= when add gives no --stop-timeout.
	DefaultStopTimeout = 10 * time.Second
	// MaxStopTimeout bounds --stop-timeout, so that a stop (which can take
	// twice as long) never hangs a command for long.
	MaxStopTimeout = 5 * time.Minute
	// DefaultAttachTimeout is how long an expected attach may take.
	DefaultAttachTimeout = 10 * time.Second
	// DefaultHealthFails is the number of unhealthy ticks before a restart.
	DefaultHealthFails = 3
	// DefaultWaitTimeout is how long --wait (Request.Wait) waits when the
	// request gives no Timeout.
	DefaultWaitTimeout = 10 * time.Second
	// IdleLimit is how long the daemon waits for the next complete request
	// on a connection, after accepting it or answering the previous one,
	// before it closes it (a client that keeps a connection for further
	// requests must send them sooner).
	IdleLimit = 10 * time.Second
)

// Size limits of one runtime. They keep one user of the control socket from
// growing the registry (and so every other user's ls and the daemon's
// memory) without bound; see docs/security.md.
const (
	// MaxArgs and MaxEnv cap the arguments and environment entries.
	MaxArgs = 256
	MaxEnv  = 256
	// MaxSpecBytes caps path, working directory, arguments, environment and
	// credentials together (the request line, 64 KiB, caps it anyway).
	MaxSpecBytes = 32 << 10
	// MaxListen caps the --listen addresses of one runtime.
	MaxListen = 16
	// MaxEnvFiles caps the --env-file paths of one runtime.
	MaxEnvFiles = 16
)

// CheckEnvEntry checks the form of one environment entry: KEY=VALUE with a
// KEY free of blanks, and no newline or NUL anywhere.
func CheckEnvEntry(kv string) error {
	k, _, ok := strings.Cut(kv, "=")
	switch {
	case !ok || k == "" || strings.ContainsAny(k, " \t\n"):
		return Errorf(ErrInvalid, "--env %q is not KEY=VALUE", kv)
	case strings.ContainsAny(kv, "\x00\n"):
		return Errorf(ErrInvalid, "--env %s: the entry contains a newline or NUL", k)
	}
	return nil
}

// CheckEnv checks an environment entry a user gives (add --env):
// [CheckEnvEntry], and no SOCKETLEY_* key (socketley sets those itself).
func CheckEnv(kv string) error {
	if err := CheckEnvEntry(kv); err != nil {
		return err
	}
	if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SOCKETLEY_") {
		return Errorf(ErrInvalid, "--env %s: SOCKETLEY_* variables are reserved: socketley sets them itself", k)
	}
	return nil
}

// CheckEnvFile checks the path of an environment file (add --env-file,
// systemd's EnvironmentFile=): absolute (the CLI resolves it against its
// directory) and with no newline or NUL (one line of a unit file).
func CheckEnvFile(p string) error {
	switch {
	case !filepath.IsAbs(p):
		return Errorf(ErrInvalid, "--env-file %q: the path is not absolute (the CLI resolves it against your working directory)", p)
	case strings.ContainsAny(p, "\x00\n"):
		return Errorf(ErrInvalid, "--env-file %q: the path contains a newline or NUL", p)
	}
	return nil
}

// CredentialIDRule says which credential IDs CheckCredentialID accepts.
const CredentialIDRule = "use 1-255 letters, digits, '_', '-', '.' or '@' (not \".\" or \"..\")"

// CheckCredentialID checks the ID of a credential (add --credential
// ID:PATH): a subset of what systemd accepts (a file name that is also a
// valid fd name: no "/", no ":", printable ASCII, at most 255 bytes, not "."
// or ".."), kept to characters that need no quoting in a shell or a table.
func CheckCredentialID(id string) error {
	ok := id != "" && id != "." && id != ".." && len(id) <= 255
	for _, r := range id {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' || r == '@')
	}
	if !ok {
		return Errorf(ErrInvalid, "--credential: bad ID %q: %s", id, CredentialIDRule)
	}
	return nil
}

// NormalizeListen checks a listen address as `socketley add --listen`
// takes it — PORT, IPv4:PORT, or [IPv6]:PORT, with PORT 1–65535 — and
// returns it in systemd's ListenStream= form (PORT alone listens on every
// address, IPv6 and IPv4). The error (class invalid) says what is wrong.
func NormalizeListen(addr string) (string, error) {
	bad := func(why string) (string, error) {
		return "", Errorf(ErrInvalid, "--listen %q: %s (use PORT, IPv4:PORT or [IPv6]:PORT)", addr, why)
	}
	host, p := "", addr
	if strings.Contains(addr, ":") {
		h, port, err := net.SplitHostPort(addr)
		if err != nil {
			var ae *net.AddrError
			if errors.As(err, &ae) {
				return bad(ae.Err)
			}
			return bad(err.Error())
		}
		host, p = h, port
	}
	port, err := strconv.Atoi(p)
	if err != nil || p != strconv.Itoa(port) {
		return bad("the port is not a number")
	}
	if port < 1 || port > 65535 {
		return bad("the port must be 1–65535")
	}
	if host == "" {
		if strings.Contains(addr, ":") {
			return bad("empty host; give just the port to listen on every address")
		}
		return strconv.Itoa(port), nil
	}
	ip := net.ParseIP(host)
	if ip == nil || strings.Contains(host, "%") {
		return bad("the host must be an IP address, not a name")
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(port)), nil
}

// Check validates an add request as far as it can be without the file
// system or the caller (the daemon then checks the paths with the caller's
// rights), and normalizes it: the path is cleaned, the restart policy's
// default is filled in, the listen addresses are put in systemd's form
// without duplicates and the limits in canonical form (ParseLimits). Both
// the CLI (before it connects) and the daemon (at its boundary) call it:
// this is the one place these rules are written.
// Errors are of class invalid and name the flag.
func (s *AddSpec) Check() error {
	if err := CheckName(s.Name); err != nil {
		return err
	}
	if len(s.Args) > MaxArgs {
		return Errorf(ErrInvalid, "%d arguments; at most %d are accepted (put long configuration in a file the program reads)", len(s.Args), MaxArgs)
	}
	if len(s.Env) > MaxEnv {
		return Errorf(ErrInvalid, "%d --env entries; at most %d are accepted (put long configuration in a file the program reads)", len(s.Env), MaxEnv)
	}
	n := len(s.Path) + len(s.WorkDir)
	for _, a := range s.Args {
		n += len(a)
	}
	for _, kv := range s.Env {
		n += len(kv)
	}
	for _, c := range s.Credentials {
		n += len(c.ID) + len(c.Path)
	}
	for _, p := range s.EnvFiles {
		n += len(p)
	}
	if n > MaxSpecBytes {
		return Errorf(ErrInvalid, "path, arguments, environment and credentials take %d bytes; at most %d are accepted (put long configuration in a file the program reads; secrets in --credential files)", n, MaxSpecBytes)
	}
	if !filepath.IsAbs(s.Path) {
		return Errorf(ErrInvalid, "path %q is not absolute (the CLI resolves it against your working directory)", s.Path)
	}
	s.Path = filepath.Clean(s.Path)
	for _, a := range s.Args {
		if strings.ContainsRune(a, 0) {
			return Errorf(ErrInvalid, "argument %q contains a NUL byte", a)
		}
	}
	for _, kv := range s.Env {
		if err := CheckEnv(kv); err != nil {
			return err
		}
	}
	seen := make(map[string]bool, len(s.Credentials))
	for i := range s.Credentials {
		c := &s.Credentials[i]
		if err := CheckCredentialID(c.ID); err != nil {
			return err
		}
		if seen[c.ID] {
			return Errorf(ErrInvalid, "--credential: ID %q given twice; give each credential its own ID", c.ID)
		}
		seen[c.ID] = true
		if !filepath.IsAbs(c.Path) {
			return Errorf(ErrInvalid, "--credential %s:%s: the path is not absolute", c.ID, c.Path)
		}
		c.Path = filepath.Clean(c.Path)
	}
	if len(s.EnvFiles) > MaxEnvFiles {
		return Errorf(ErrInvalid, "%d --env-file paths; at most %d are accepted", len(s.EnvFiles), MaxEnvFiles)
	}
	var envFiles []string // nil when none
	for _, p := range s.EnvFiles {
		if err := CheckEnvFile(p); err != nil {
			return err
		}
		if p = filepath.Clean(p); !oneOf(envFiles, p) {
			envFiles = append(envFiles, p)
		}
	}
	s.EnvFiles = envFiles
	props, err := CheckProperties(s.Properties)
	if err != nil {
		return err
	}
	s.Properties = props
	if s.WorkDir != "" && !filepath.IsAbs(s.WorkDir) {
		return Errorf(ErrInvalid, "--workdir %q is not absolute", s.WorkDir)
	}
	policy, err := ParseRestartPolicy(string(s.Restart))
	if err != nil {
		return err
	}
	s.Restart = policy
	switch {
	case s.RestartSec < 0:
		return Errorf(ErrInvalid, "--restart-sec %s is negative; use 0 (at once) or a positive duration such as 500ms", time.Duration(s.RestartSec))
	case s.RestartMaxDelay < 0:
		return Errorf(ErrInvalid, "--restart-max-delay %s is negative; give a duration such as 30s (0 = the default, %s)", time.Duration(s.RestartMaxDelay), DefaultRestartMaxDelay)
	case s.RestartReset < 0 || s.RestartReset != 0 && time.Duration(s.RestartReset) < MinRestartReset:
		return Errorf(ErrInvalid, "--restart-reset %s is below %s: a run that short cannot count as healthy; give a duration such as 10s", time.Duration(s.RestartReset), MinRestartReset)
	case s.MaxRestarts < 0:
		return Errorf(ErrInvalid, "--max-restarts %d is negative; use 0 to keep restarting forever", s.MaxRestarts)
	case s.StopTimeout < 0 || time.Duration(s.StopTimeout) > MaxStopTimeout:
		return Errorf(ErrInvalid, "--stop-timeout %s: give a positive duration up to %s, such as 10s (0 = the default, %s)", time.Duration(s.StopTimeout), MaxStopTimeout, DefaultStopTimeout)
	case s.AttachTimeout < 0:
		return Errorf(ErrInvalid, "--attach-timeout %s is negative; give a duration such as 10s", time.Duration(s.AttachTimeout))
	case s.HealthFails != nil && *s.HealthFails < 0:
		return Errorf(ErrInvalid, "--health-fails %d is negative (0 disables health restarts)", *s.HealthFails)
	}
	if len(s.Listen) > MaxListen {
		return Errorf(ErrInvalid, "%d --listen addresses; at most %d are accepted", len(s.Listen), MaxListen)
	}
	var listen []string // nil when none
	for _, a := range s.Listen {
		n, err := NormalizeListen(a)
		if err != nil {
			return err
		}
		if !oneOf(listen, n) {
			listen = append(listen, n)
		}
	}
	s.Listen = listen
	_, limits, err := ParseLimits(s.Limits)
	if err != nil {
		return err
	}
	s.Limits = limits
	return nil
}

// Types a process attaches as (attach TYPE, the TYPE column of ls): the
// four the C++ SDK knows.
const (
	AttachServer = "server"
	AttachClient = "client"
	AttachProxy  = "proxy"
	AttachCache  = "cache"
)

// AttachTypes lists the types an attach may report.
func AttachTypes() []string { return []string{AttachServer, AttachClient, AttachProxy, AttachCache} }

// Check validates an attach request: a known type, a valid name, a port
// 1–65535 and a pid. It is the one place these rules are written: the CLI,
// the SDK and the daemon call it. Errors are of class invalid.
func (a *AttachSpec) Check() error {
	if !oneOf(AttachTypes(), a.Type) {
		return Errorf(ErrInvalid, "attach: unknown type %q (server, client, proxy or cache)", a.Type)
	}
	if err := CheckName(a.Name); err != nil {
		return err
	}
	if a.Port < 1 || a.Port > 65535 {
		return Errorf(ErrInvalid, "attach: port %d out of range 1-65535", a.Port)
	}
	if a.PID <= 0 {
		return Errorf(ErrInvalid, "attach: pid %d is not a process id", a.PID)
	}
	return nil
}
