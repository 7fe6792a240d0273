package units

import (
	"fmt"
	"strconv"
	"strings"
)

// NativeBackoffVersion is the first systemd version whose services have
// RestartSteps= and RestartMaxDelaySec= (a restart delay that grows with
// every automatic restart).
const NativeBackoffVersion = 254

// RestartSubStatesVersion is the first systemd version whose services say,
// in their sub-state, that an automatic restart follows a failed or
// inactive state: failed-before-auto-restart, dead-before-auto-restart
// (measured: 254.26 signals failed/failed-before-auto-restart,
// activating/auto-restart, activating/auto-restart-queued, active/running
// after a kill -9; 252.38 signals failed/failed, activating/auto-restart,
// inactive/dead, active/running). From it on a Watch needs no settling to
// hide a restart's failure (see Watch.settle).
const RestartSubStatesVersion = 254

// ManagerVersion returns the major version of the service manager c talks
// to (the Manager's Version property, e.g. 252 for "252.38-1~deb12u1").
// One D-Bus round trip with the bus's default timeout.
func (c *Conn) ManagerVersion() (int, error) {
	v, err := c.sd.GetManagerProperty("Version")
	if err != nil {
		return 0, c.wrap("read the manager version", "", err)
	}
	// GetManagerProperty returns the variant's text form: "\"252.38-1\"".
	return ParseVersion(strings.Trim(v, `"`))
}

// ParseVersion returns the major version of a systemd version string:
// "252.38-1~deb12u1" → 252, "254" → 254, "v257.1" → 257.
func ParseVersion(s string) (int, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "v")
	end := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(t)
	}
	n, err := strconv.Atoi(t[:end])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("systemd version %q: no major version number", s)
	}
	return n, nil
}
