package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/socketley/socketley/internal/wire"
)

// extraProperties returns the D-Bus properties of the -p/--property
// settings kvs (canonical KEY=VALUE from wire.CheckProperties), each with
// the signature systemd's org.freedesktop.systemd1(5) gives it. A key
// outside wire.PropertyRules is ErrInvalid.
func extraProperties(kvs []string) ([]sdbus.Property, error) {
	var props []sdbus.Property
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		r, ok := wire.PropertyRuleOf(k)
		if !ok {
			return nil, fmt.Errorf("%w: property %s is not in socketley's allow-list", ErrInvalid, k)
		}
		if _, err := wire.CheckProperty(kv); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		switch r.Kind {
		case wire.PropBool:
			props = append(props, prop(k, v == "yes"))
		case wire.PropInt:
			n, _ := strconv.ParseInt(v, 10, 32)
			props = append(props, prop(k, int32(n)))
		case wire.PropUint:
			n, _ := strconv.ParseUint(v, 10, 64)
			props = append(props, prop(k, n))
		case wire.PropBytes:
			n := bytesValue(v)
			props = append(props, prop(k, n))
			if k == "LimitCORE" {
				props = append(props, prop("LimitCORESoft", n))
			}
		case wire.PropTimespan:
			d, _ := wire.ParseTimespan(v)
			us := uint64(math.MaxUint64) // systemd's USEC_INFINITY; 0 also disables the timeout
			if d != wire.TimespanInfinity && d != 0 {
				us = usec(d)
			}
			props = append(props, prop(strings.TrimSuffix(k, "Sec")+"USec", us))
		case wire.PropOctal:
			n, _ := strconv.ParseUint(v, 8, 32)
			props = append(props, prop(k, uint32(n)))
		case wire.PropSignal:
			n, _, _ := wire.SignalNumber(v)
			props = append(props, prop(k, int32(n)))
		case wire.PropEnum, wire.PropText:
			props = append(props, prop(k, v))
		}
	}
	return props, nil
}

// bytesValue is a canonical byte count (wire.FormatBytes, or "0") as
// systemd encodes it: infinity is UINT64_MAX.
func bytesValue(v string) uint64 {
	if v == "infinity" {
		return wire.Infinity
	}
	shift := 0
	if i := strings.IndexByte("KMGT", v[len(v)-1]); i >= 0 {
		shift, v = 10*(i+1), v[:len(v)-1]
	}
	n, _ := strconv.ParseUint(v, 10, 64)
	return n << shift
}

// liveProperties returns the D-Bus properties of the settings of kvs that
// systemd changes on a running unit (wire.PropertyRule.Live): what set
// applies at once.
func liveProperties(kvs []string) ([]sdbus.Property, error) {
	var live []string
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		if r, ok := wire.PropertyRuleOf(k); ok && r.Live {
			live = append(live, kv)
		}
	}
	return extraProperties(live)
}
