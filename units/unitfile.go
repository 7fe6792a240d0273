package units

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"golang.org/x/sys/unix"
)

// Unit files: the same units as text, for plain systemd (socketley export
// --format systemd). ServiceFile and SocketFile render the very D-Bus
// properties that Start and StartSocket send (properties, socketProperties)
// as unit-file settings, so the two cannot drift apart: a property that has
// no rendering here is an error, not a silent omission.

// UnitFile is the text of one unit file, section by section: each line is
// KEY=VALUE in unit-file syntax (systemd.syntax(7)), specifiers escaped
// ("%%"), quoted where the setting unquotes.
type UnitFile struct {
	// Comments come first, each line prefixed with "# ".
	Comments []string
	// Unit, Service, Socket and Install are the sections; an empty one is
	// left out.
	Unit, Service, Socket, Install []string
}

// String returns the unit file's text.
func (f UnitFile) String() string {
	var b strings.Builder
	for _, c := range f.Comments {
		b.WriteString(strings.TrimRight("# "+c, " ") + "\n")
	}
	for _, s := range []struct {
		name  string
		lines []string
	}{{"Unit", f.Unit}, {"Service", f.Service}, {"Socket", f.Socket}, {"Install", f.Install}} {
		if len(s.lines) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		b.WriteString("[" + s.name + "]\n")
		for _, l := range s.lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// ServiceFile returns socketley-NAME.service for spec as Start would create
// it in scope: every property of properties(spec, scope), in unit-file
// form. Errors wrap ErrInvalid.
func ServiceFile(spec Spec, scope Scope) (UnitFile, error) {
	props, err := properties(spec, scope)
	if err != nil {
		return UnitFile{}, err
	}
	var f UnitFile
	if err := renderProps(&f, props); err != nil {
		return UnitFile{}, fmt.Errorf("%s: %w", Name(spec.Name), err)
	}
	return f, nil
}

// SocketFile returns socketley-NAME.socket listening on listen, as
// StartSocket creates it. Errors wrap ErrInvalid.
func SocketFile(name string, listen []string) (UnitFile, error) {
	props, err := socketProperties(name, listen)
	if err != nil {
		return UnitFile{}, err
	}
	var f UnitFile
	if err := renderProps(&f, props); err != nil {
		return UnitFile{}, fmt.Errorf("%s: %w", SocketName(name), err)
	}
	return f, nil
}

// section returns the section of the setting k: [Unit] for the unit's
// own settings, [Socket] for the socket's, [Service] for every other one.
func section(k string) string {
	switch k {
	case "Description", "CollectMode", "StartLimitBurst", "StartLimitIntervalSec":
		return "Unit"
	case "ListenStream", "TriggerLimitIntervalSec":
		return "Socket"
	}
	return "Service"
}

// renderProps appends the unit-file lines of props to f.
func renderProps(f *UnitFile, props []sdbus.Property) error {
	for i := 0; i < len(props); i++ {
		p := props[i]
		// LimitX and LimitXSoft: one LimitX=SOFT:HARD.
		if strings.HasPrefix(p.Name, "Limit") && !strings.HasSuffix(p.Name, "Soft") {
			hard, ok := p.Value.Value().(uint64)
			if !ok {
				return fmt.Errorf("%w: property %s: value %s", ErrInvalid, p.Name, p.Value)
			}
			v := rlimit(hard)
			if i+1 < len(props) && props[i+1].Name == p.Name+"Soft" {
				if soft, ok := props[i+1].Value.Value().(uint64); ok && soft != hard {
					v = rlimit(soft) + ":" + v
				}
				i++
			}
			f.Service = append(f.Service, p.Name+"="+v)
			continue
		}
		lines, err := propLines(p)
		if err != nil {
			return err
		}
		for _, l := range lines {
			k, _, _ := strings.Cut(l, "=")
			switch section(k) {
			case "Unit":
				f.Unit = append(f.Unit, l)
			case "Socket":
				f.Socket = append(f.Socket, l)
			default:
				f.Service = append(f.Service, l)
			}
		}
	}
	return nil
}

// propLines returns the unit-file lines of one D-Bus property.
func propLines(p sdbus.Property) ([]string, error) {
	bad := func() ([]string, error) {
		return nil, fmt.Errorf("%w: property %s (%s) has no unit-file form", ErrInvalid, p.Name, p.Value.Signature())
	}
	one := func(k, v string) ([]string, error) { return []string{k + "=" + v}, nil }
	switch v := p.Value.Value().(type) {
	case bool:
		return one(p.Name, yesNo(v))
	case string:
		return rawLine(p.Name, v)
	case []string:
		switch p.Name {
		case "Environment":
			var out []string
			for _, kv := range v {
				out = append(out, "Environment="+quoteWord(kv))
			}
			return out, nil
		case "SystemCallArchitectures", "ReadWritePaths":
			words := make([]string, len(v))
			for i, w := range v {
				words[i] = quoteWord(w)
			}
			return one(p.Name, strings.Join(words, " "))
		}
	case uint64:
		switch {
		case strings.HasSuffix(p.Name, "USec"):
			name := strings.TrimSuffix(p.Name, "USec") + "Sec"
			if p.Name == "CPUQuotaPerSecUSec" {
				// 1% of one CPU is 10 ms of CPU time per second.
				return one("CPUQuota", strconv.FormatUint(v/10000, 10)+"%")
			}
			return one(name, timespan(v))
		case p.Name == "RestrictNamespaces" && v == 0:
			return one(p.Name, "yes")
		case (p.Name == "CapabilityBoundingSet" || p.Name == "AmbientCapabilities") && v == 0:
			return one(p.Name, "")
		case p.Name == "MemoryMax" || p.Name == "MemoryHigh" || p.Name == "MemorySwapMax" || p.Name == "TasksMax":
			return one(p.Name, rlimit(v))
		case p.Name == "CPUWeight" || p.Name == "IOWeight":
			return one(p.Name, strconv.FormatUint(v, 10))
		}
	case uint32:
		if p.Name == "UMask" {
			return one(p.Name, fmt.Sprintf("%04o", v))
		}
		return one(p.Name, strconv.FormatUint(uint64(v), 10))
	case int32:
		switch p.Name {
		case "KillSignal":
			if n := unix.SignalName(unix.Signal(v)); n != "" {
				return one(p.Name, n)
			}
		case "SystemCallErrorNumber":
			if n := unix.ErrnoName(unix.Errno(v)); n != "" {
				return one(p.Name, n)
			}
		}
		return one(p.Name, strconv.FormatInt(int64(v), 10))
	case []execCommandEx:
		if p.Name != "ExecStartEx" || len(v) != 1 || len(v[0].Argv) == 0 || v[0].Argv[0] != v[0].Path {
			return bad()
		}
		prefix := ""
		for _, fl := range v[0].Flags {
			if fl != "no-env-expand" {
				return bad()
			}
			prefix = ":"
		}
		words := []string{quoteWord(prefix + v[0].Path)}
		for _, a := range v[0].Argv[1:] {
			words = append(words, quoteWord(a))
		}
		return one("ExecStart", strings.Join(words, " "))
	case []envFile:
		var out []string
		for _, e := range v {
			l, err := rawLine("EnvironmentFile", map[bool]string{true: "-"}[e.IgnoreErrors]+e.Path)
			if err != nil {
				return nil, err
			}
			out = append(out, l...)
		}
		return out, nil
	case []Credential:
		var out []string
		for _, c := range v {
			l, err := rawLine("LoadCredential", c.ID+":"+c.Path)
			if err != nil {
				return nil, err
			}
			out = append(out, l...)
		}
		return out, nil
	case addressFamilies:
		return one(p.Name, denyList(!v.Allow, v.Families))
	case systemCallFilter:
		return one(p.Name, denyList(!v.Allow, v.Calls))
	}
	// socketProperties' Listen, a(ss) of an anonymous struct.
	if p.Name == "Listen" {
		return listenLines(p)
	}
	return bad()
}

// listenLines renders Listen (a(ss): type, address) as ListenTYPE= lines.
func listenLines(p sdbus.Property) ([]string, error) {
	v := reflect.ValueOf(p.Value.Value())
	if v.Kind() != reflect.Slice || v.Type().Elem().Kind() != reflect.Struct || v.Type().Elem().NumField() != 2 {
		return nil, fmt.Errorf("%w: property Listen (%s) has no unit-file form", ErrInvalid, p.Value.Signature())
	}
	var out []string
	for i := range v.Len() {
		typ, addr := v.Index(i).Field(0), v.Index(i).Field(1)
		if typ.Kind() != reflect.String || addr.Kind() != reflect.String {
			return nil, fmt.Errorf("%w: property Listen (%s) has no unit-file form", ErrInvalid, p.Value.Signature())
		}
		l, err := rawLine("Listen"+typ.String(), addr.String())
		if err != nil {
			return nil, err
		}
		out = append(out, l...)
	}
	return out, nil
}

// denyList is a list setting, "~" first when it is a deny list.
func denyList(deny bool, words []string) string {
	s := strings.Join(words, " ")
	if deny {
		return "~" + s
	}
	return s
}

// rawLine is KEY=VALUE for a setting whose value systemd takes as it is
// (no unquoting): specifiers escaped. A value systemd would read otherwise
// (a line break, a trailing backslash, which continues the line, or
// surrounding white space, which is stripped) is refused.
func rawLine(k, v string) ([]string, error) {
	if strings.ContainsAny(v, "\n\r") || strings.HasSuffix(v, `\`) || strings.TrimSpace(v) != v {
		return nil, fmt.Errorf("%w: %s=%q cannot be written in a unit file as it is", ErrInvalid, k, v)
	}
	return []string{k + "=" + strings.ReplaceAll(v, "%", "%%")}, nil
}

// quoteWord returns s as one word of a setting that splits its value into
// words with quotes and C escapes (ExecStart=, Environment=,
// systemd.syntax(7)): as it is when it has only safe characters, else in
// double quotes with \\, \" and control characters escaped. "%" is always
// doubled (the specifier escape).
func quoteWord(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return strings.ReplaceAll(s, "%", "%%")
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '\\' || r == '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '%':
			b.WriteString("%%")
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// rlimit is a byte count or number, infinity for UINT64_MAX.
func rlimit(n uint64) string {
	if n == math.MaxUint64 {
		return "infinity"
	}
	return strconv.FormatUint(n, 10)
}

// timespan is a duration in µs as a systemd time span: "0", "infinity",
// or the largest exact unit (s, ms, us).
func timespan(us uint64) string {
	switch {
	case us == math.MaxUint64:
		return "infinity"
	case us == 0:
		return "0"
	case us%uint64(time.Second/time.Microsecond) == 0:
		return strconv.FormatUint(us/1e6, 10) + "s"
	case us%1000 == 0:
		return strconv.FormatUint(us/1000, 10) + "ms"
	}
	return strconv.FormatUint(us, 10) + "us"
}
