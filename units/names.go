package units

import (
	"strconv"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/socketley/socketley/internal/wire"
)

// Scope selects the systemd instance: the system manager or the calling
// user's manager.
type Scope int

const (
	// System is the system manager (PID 1) on the system bus.
	System Scope = iota
	// User is the calling user's manager (systemd --user) on the session bus.
	User
)

// String returns "system", "user" or "scope(N)".
func (s Scope) String() string {
	switch s {
	case System:
		return "system"
	case User:
		return "user"
	}
	return "scope(" + strconv.Itoa(int(s)) + ")"
}

const (
	unitPrefix  = "socketley-"
	unitSuffix  = ".service"
	unitPattern = unitPrefix + "*" + unitSuffix
	// maxUnitName is systemd's UNIT_NAME_MAX minus the terminating NUL.
	maxUnitName = 255

	busName      = "org.freedesktop.systemd1"
	managerPath  = godbus.ObjectPath("/org/freedesktop/systemd1")
	unitPathBase = "/org/freedesktop/systemd1/unit/"
)

// Name returns the unit name of a runtime: "socketley-" + runtime + ".service".
// It does not validate runtime; [Conn.Start] does.
func Name(runtime string) string { return wire.UnitName(runtime) }

// RuntimeName is the inverse of [Name]: it returns the runtime name of a
// socketley unit and true, or "" and false when unit is not
// socketley-NAME.service with a valid NAME.
func RuntimeName(unit string) (string, bool) {
	rest, ok := strings.CutPrefix(unit, unitPrefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, unitSuffix)
	if !ok || !validRuntime(name) {
		return "", false
	}
	return name, true
}

// validRuntime reports whether name can be the NAME of socketley-NAME.service:
// not empty, only the characters systemd allows in a unit name prefix except
// the escape character '\' and the instance separator '@', and short enough.
func validRuntime(name string) bool {
	if name == "" || len(Name(name)) > maxUnitName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// unitPath returns the D-Bus object path of a unit, escaped the way systemd
// does (bus_label_escape): every byte but [A-Za-z0-9] (and a leading digit)
// becomes _xx, so "socketley-web.service" is ".../unit/socketley_2dweb_2eservice".
func unitPath(unit string) godbus.ObjectPath {
	const hex = "0123456789abcdef"
	if unit == "" {
		return unitPathBase + "_"
	}
	var b strings.Builder
	b.WriteString(unitPathBase)
	for i := 0; i < len(unit); i++ {
		c := unit[i]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		digit := c >= '0' && c <= '9'
		if alpha || digit && i > 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return godbus.ObjectPath(b.String())
}

// unitFromPath is the inverse of unitPath: the unit name of a unit object
// path, and false when path is not a unit path or is not escaped correctly.
func unitFromPath(path godbus.ObjectPath) (string, bool) {
	label, ok := strings.CutPrefix(string(path), unitPathBase)
	if !ok || label == "" || strings.Contains(label, "/") {
		return "", false
	}
	if label == "_" {
		return "", true
	}
	out := make([]byte, 0, len(label))
	for i := 0; i < len(label); i++ {
		c := label[i]
		if c != '_' {
			out = append(out, c)
			continue
		}
		if i+2 >= len(label) {
			return "", false
		}
		hi, ok1 := unhex(label[i+1])
		lo, ok2 := unhex(label[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	return string(out), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// runtimeFromPath returns the runtime name of a socketley unit's object path.
func runtimeFromPath(path godbus.ObjectPath) (string, bool) {
	unit, ok := unitFromPath(path)
	if !ok {
		return "", false
	}
	return RuntimeName(unit)
}
