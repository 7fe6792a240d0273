package wire

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxProperties bounds the -p/--property settings of one runtime.
const MaxProperties = 32

// PropertyKind is the value syntax of an allowed unit property.
type PropertyKind int

// The value syntaxes of the allowed properties (systemd's, a subset).
const (
	// PropBool: yes or no (also 1/0, true/false, on/off, y/n, t/f).
	PropBool PropertyKind = iota + 1
	// PropInt: a whole number, possibly negative, within the key's bounds.
	PropInt
	// PropUint: a whole number within the key's bounds.
	PropUint
	// PropBytes: bytes with an optional K, M, G or T suffix, or infinity.
	PropBytes
	// PropTimespan: a systemd time span (90, 90s, 5min, 1h 30min, 500ms)
	// or infinity.
	PropTimespan
	// PropOctal: a file mode mask such as 0027.
	PropOctal
	// PropSignal: a signal name such as SIGTERM or TERM.
	PropSignal
	// PropEnum: one of the key's words.
	PropEnum
	// PropText: one line of text.
	PropText
)

// PropertyRule is one entry of the -p/--property allow-list.
type PropertyRule struct {
	// Key is the unit setting, as in a unit file (TimeoutStartSec).
	Key  string
	Kind PropertyKind
	// Min and Max bound PropInt and PropUint values.
	Min, Max int64
	// Words are the values of a PropEnum.
	Words []string
	// Live is set when systemd changes the setting on a running unit
	// (set applies it at once); the others take effect at the next start.
	Live bool
	// Privileged, when set, says why a value (canonical form) would give
	// a non-root caller of the system daemon more than systemd gives any
	// service ("" when the value is anyone's).
	Privileged func(value string) string
	// Doc says what the setting does, in a few words.
	Doc string
	// SystemOnly, when set, says why the setting (=yes) is refused with a
	// user daemon: its systemd cannot apply it everywhere and fails the
	// start where it cannot.
	SystemOnly string
}

// Syntax words the values the rule accepts, as the errors say it.
func (r PropertyRule) Syntax() string {
	switch r.Kind {
	case PropBool:
		return "yes or no"
	case PropInt, PropUint:
		return fmt.Sprintf("a whole number from %d to %d", r.Min, r.Max)
	case PropBytes:
		return "bytes with an optional K, M, G or T suffix (base 1024), such as 512M, or infinity"
	case PropTimespan:
		return "a time span such as 90, 90s, 5min, 1h 30min or 500ms (a bare number is seconds), or infinity"
	case PropOctal:
		return "an octal file mode mask from 0000 to 0777, such as 0027"
	case PropSignal:
		return "a signal name such as SIGTERM, SIGINT or SIGQUIT"
	case PropEnum:
		return "one of " + strings.Join(r.Words, ", ")
	case PropText:
		return "one line of UTF-8 text without control characters, at most 256 bytes"
	}
	return "?"
}

func negativeRoot(what string) func(string) string {
	return func(v string) string {
		if strings.HasPrefix(v, "-") {
			return "a negative value " + what
		}
		return ""
	}
}

// PropertyRules returns the -p/--property allow-list, sorted by key: the
// unit settings socketley passes to systemd as given. Settings that have
// their own flag (--env, --restart, --memory-max …), that run code or
// change who the program runs as (ExecStartPre=, User=, capabilities) are
// not in it. docs/cli.md documents it.
func PropertyRules() []PropertyRule {
	b := func(key, doc string) PropertyRule { return PropertyRule{Key: key, Kind: PropBool, Doc: doc} }
	return []PropertyRule{
		{Key: "Description", Kind: PropText, Doc: "the unit's description (systemctl status shows it)"},
		{Key: "IOWeight", Kind: PropUint, Min: 1, Max: 10000, Live: true, Doc: "share of block I/O against other units (default 100)",
			Privileged: func(v string) string {
				if n, _ := strconv.Atoi(v); n > 100 {
					return "a weight above 100 (the default) takes I/O time from other services"
				}
				return ""
			}},
		{Key: "KillSignal", Kind: PropSignal, Doc: "the signal a stop sends first (default SIGTERM)"},
		{Key: "LimitCORE", Kind: PropBytes, Doc: "largest core dump, soft and hard (0 is none; systemd-coredump keeps them)"},
		b("LockPersonality", "lock the execution domain"),
		b("MemoryDenyWriteExecute", "no memory both writable and executable (no for JIT runtimes under --harden)"),
		{Key: "MemorySwapMax", Kind: PropBytes, Live: true, Doc: "swap the unit may use"},
		{Key: "Nice", Kind: PropInt, Min: -20, Max: 19, Doc: "CPU scheduling priority of the processes (default 0)",
			Privileged: negativeRoot("raises the priority above other services")},
		b("NoNewPrivileges", "no privilege gain through execve (setuid, file capabilities)"),
		{Key: "OOMScoreAdjust", Kind: PropInt, Min: -1000, Max: 1000, Doc: "how willingly the kernel's OOM killer picks the processes",
			Privileged: negativeRoot("shields the processes from the OOM killer at the cost of other services")},
		b("PrivateDevices", "a private /dev without physical devices"),
		b("PrivateIPC", "a private System V IPC and POSIX message queue namespace"),
		b("PrivateNetwork", "no network but a private loopback (not for network services)"),
		b("PrivateTmp", "a private /tmp and /var/tmp"),
		b("ProtectClock", "no changes to the system clock"),
		b("ProtectControlGroups", "the cgroup file system read-only"),
		{Key: "ProtectHome", Kind: PropEnum, Words: []string{"no", "yes", "read-only", "tmpfs"}, Doc: "hide or protect /home, /root and /run/user"},
		b("ProtectHostname", "no changes to the host name"),
		{Key: "ProtectKernelLogs", Kind: PropBool, Doc: "no access to the kernel log (system daemon only)",
			SystemOnly: fmt.Sprintf(userNamespaceOnly, "read the kernel log")},
		b("ProtectKernelModules", "no loading of kernel modules"),
		{Key: "ProtectKernelTunables", Kind: PropBool, Doc: "/proc/sys, /sys and similar read-only (system daemon only)",
			SystemOnly: fmt.Sprintf(userNamespaceOnly, "write /proc/sys")},
		{Key: "ProtectSystem", Kind: PropEnum, Words: []string{"no", "yes", "full", "strict"}, Doc: "the OS file system read-only (strict: all of it)"},
		b("RestrictRealtime", "no realtime scheduling"),
		b("RestrictSUIDSGID", "no setuid or setgid files created"),
		{Key: "RuntimeMaxSec", Kind: PropTimespan, Doc: "stop the unit after it has run this long (a failure: Restart= applies)"},
		{Key: "TimeoutStartSec", Kind: PropTimespan, Doc: "how long a start may take"},
		{Key: "UMask", Kind: PropOctal, Doc: "file mode creation mask (default 0022)"},
	}
}

// userNamespaceOnly is why a setting is the system daemon's only.
const userNamespaceOnly = "a user manager applies it only inside a user namespace and fails the start (226/NAMESPACE) where it cannot make one; a user's program cannot %s anyway"

// PropertyUserRefused returns why the canonical KEY=VALUE kv is refused
// with a user daemon ("" when it is not).
func PropertyUserRefused(kv string) string {
	k, v, _ := strings.Cut(kv, "=")
	if r, ok := PropertyRuleOf(k); ok && r.SystemOnly != "" && v == "yes" {
		return r.SystemOnly
	}
	return ""
}

// PropertyRuleOf returns the allow-list entry of key (case as in a unit
// file), and whether it is allowed.
func PropertyRuleOf(key string) (PropertyRule, bool) {
	for _, r := range PropertyRules() {
		if r.Key == key {
			return r, true
		}
	}
	return PropertyRule{}, false
}

// propertyFlag names the flag to use for a setting that has one.
func propertyFlag(key string) (string, bool) {
	switch key {
	case "Environment":
		return "--env", true
	case "EnvironmentFile":
		return "--env-file", true
	case "LoadCredential":
		return "--credential", true
	case "WorkingDirectory":
		return "--workdir", true
	case "User":
		return "--run-as (system daemon, root only)", true
	case "Restart":
		return "--restart", true
	case "RestartSec":
		return "--restart-sec", true
	case "TimeoutStopSec":
		return "--stop-timeout", true
	case "MemoryMax":
		return "--memory-max", true
	case "MemoryHigh":
		return "--memory-high", true
	case "CPUQuota":
		return "--cpu-quota", true
	case "CPUWeight":
		return "--cpu-weight", true
	case "TasksMax":
		return "--tasks-max", true
	case "LimitNOFILE":
		return "--nofile", true
	case "ExecStart":
		return "the PATH and ARGS of add", true
	case "ListenStream":
		return "--listen", true
	}
	return "", false
}

// AllowedPropertyKeys lists the keys of the allow-list, for errors.
func AllowedPropertyKeys() string {
	rules := PropertyRules()
	keys := make([]string, len(rules))
	for i, r := range rules {
		keys[i] = r.Key
	}
	return strings.Join(keys, ", ")
}

// CheckProperty checks one -p/--property KEY=VALUE and returns it in
// canonical form ("Nice=5", "TimeoutStartSec=90s", "ProtectHome=read-only").
// An empty VALUE is refused here; set's "KEY=" (back to systemd's default)
// is handled by SetSpec.Check. Errors are of class invalid, name the key
// and say what it accepts; a key outside the allow-list gets the list (or
// the flag to use instead).
func CheckProperty(kv string) (string, error) {
	key, val, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return "", Errorf(ErrInvalid, "-p/--property %q: give KEY=VALUE, such as -p Nice=5", kv)
	}
	r, ok := PropertyRuleOf(key)
	if !ok {
		if flag, has := propertyFlag(key); has {
			return "", Errorf(ErrInvalid, "-p/--property %s: use %s for it", key, flag)
		}
		return "", Errorf(ErrInvalid, "-p/--property %s: not a setting socketley passes on; allowed: %s (docs/cli.md#-p---property)", key, AllowedPropertyKeys())
	}
	canon, err := canonicalValue(r, val)
	if err != nil {
		return "", Errorf(ErrInvalid, "-p/--property %s=%q: %s", key, val, r.Syntax())
	}
	return key + "=" + canon, nil
}

// CheckProperties checks every KEY=VALUE of ps (CheckProperty) and returns
// them in canonical form, sorted by key, a key given twice keeping its
// last value.
func CheckProperties(ps []string) ([]string, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range ps {
		c, err := CheckProperty(kv)
		if err != nil {
			return nil, err
		}
		k, _, _ := strings.Cut(c, "=")
		m[k] = c
	}
	if len(m) > MaxProperties {
		return nil, Errorf(ErrInvalid, "-p/--property: %d settings; at most %d", len(m), MaxProperties)
	}
	out := make([]string, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

// MergeProperties returns base with the settings of change applied: a
// "KEY=" in change removes KEY, any other replaces it. Both are canonical
// (change's removals aside); the result is sorted by key.
func MergeProperties(base, change []string) []string {
	m := map[string]string{}
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		m[k] = kv
	}
	for _, kv := range change {
		k, v, _ := strings.Cut(kv, "=")
		if v == "" {
			delete(m, k)
		} else {
			m[k] = kv
		}
	}
	out := make([]string, 0, len(m))
	for _, kv := range m {
		out = append(out, kv)
	}
	slices.Sort(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// PropertyPrivileged returns why the canonical KEY=VALUE kv needs root
// with the system daemon, "" when anyone may set it.
func PropertyPrivileged(kv string) string {
	k, v, _ := strings.Cut(kv, "=")
	if r, ok := PropertyRuleOf(k); ok && r.Privileged != nil {
		return r.Privileged(v)
	}
	return ""
}

func canonicalValue(r PropertyRule, v string) (string, error) {
	bad := fmt.Errorf("bad value")
	switch r.Kind {
	case PropBool:
		switch strings.ToLower(v) {
		case "1", "yes", "y", "true", "t", "on":
			return "yes", nil
		case "0", "no", "n", "false", "f", "off":
			return "no", nil
		}
	case PropInt, PropUint:
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n >= r.Min && n <= r.Max && (r.Kind == PropInt || !strings.HasPrefix(v, "-")) && !strings.HasPrefix(v, "+") {
			return strconv.FormatInt(n, 10), nil
		}
	case PropBytes:
		if v == "0" {
			return "0", nil
		}
		if n, ok := parseBytes(v); ok {
			return FormatBytes(n), nil
		}
	case PropTimespan:
		if d, ok := ParseTimespan(v); ok {
			return FormatTimespan(d), nil
		}
	case PropOctal:
		if len(v) >= 1 && len(v) <= 4 && strings.Trim(v, "01234567") == "" {
			n, _ := strconv.ParseUint(v, 8, 32)
			return fmt.Sprintf("%04o", n), nil
		}
	case PropSignal:
		if _, name, ok := SignalNumber(v); ok {
			return name, nil
		}
	case PropEnum:
		if slices.Contains(r.Words, v) {
			return v, nil
		}
	case PropText:
		// UTF-8 (D-Bus refuses anything else, so every start would fail)
		// without control characters (no escape sequences in systemctl
		// status).
		if v != "" && len(v) <= 256 && utf8.ValidString(v) && !strings.ContainsFunc(v, unicode.IsControl) {
			return v, nil
		}
	}
	return "", bad
}

// TimespanInfinity is the time span "infinity" (systemd's USEC_INFINITY).
const TimespanInfinity = time.Duration(math.MaxInt64)

// ParseTimespan parses a systemd time span (systemd.time(7)), whole
// numbers only: components such as 1h 30min, 90s, 500ms, 2d, with the
// units us, ms, s, min (or m), h, d, w and their long names; a bare
// number is seconds; infinity. Components may be separated by blanks.
func ParseTimespan(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "infinity" {
		return TimespanInfinity, true
	}
	if s == "" {
		return 0, false
	}
	units := []struct {
		names []string
		d     time.Duration
	}{
		{[]string{"usec", "us", "µs"}, time.Microsecond},
		{[]string{"msec", "ms"}, time.Millisecond},
		{[]string{"seconds", "second", "sec", "s"}, time.Second},
		{[]string{"minutes", "minute", "min", "m"}, time.Minute},
		{[]string{"hours", "hour", "hr", "h"}, time.Hour},
		{[]string{"days", "day", "d"}, 24 * time.Hour},
		{[]string{"weeks", "week", "w"}, 7 * 24 * time.Hour},
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 12 {
			return 0, false
		}
		n, _ := strconv.ParseInt(s[:i], 10, 64)
		s = strings.TrimLeft(s[i:], " ")
		j := 0
		for j < len(s) && s[j] != ' ' && (s[j] < '0' || s[j] > '9') {
			j++
		}
		word := s[:j]
		s = strings.TrimLeft(s[j:], " ")
		unit := time.Second
		if word != "" {
			found := false
			for _, u := range units {
				if slices.Contains(u.names, word) {
					unit, found = u.d, true
					break
				}
			}
			if !found {
				return 0, false
			}
		}
		if n > int64(TimespanInfinity/unit) {
			return 0, false
		}
		total += time.Duration(n) * unit
		if total < 0 || total >= TimespanInfinity {
			return 0, false
		}
	}
	return total, true
}

// FormatTimespan writes d as ParseTimespan reads it: "90s", "1500ms",
// "250us", "0", "infinity".
func FormatTimespan(d time.Duration) string {
	switch {
	case d == TimespanInfinity:
		return "infinity"
	case d == 0:
		return "0"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return strconv.FormatInt(int64(d/time.Microsecond), 10) + "us"
}

// SignalNumber returns the number and the SIG name of the signal named s
// (SIGTERM, TERM or sigterm), of the signals a stop may sensibly send.
func SignalNumber(s string) (int, string, bool) {
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sigs := map[string]int{"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGABRT": 6, "SIGKILL": 9, "SIGUSR1": 10,
		"SIGUSR2": 12, "SIGALRM": 14, "SIGTERM": 15, "SIGCONT": 18, "SIGWINCH": 28, "SIGPWR": 30}
	n, ok := sigs[name]
	return n, name, ok
}
