// Package export turns registered runtimes into units of another engine
// (socketley export): unit files for plain systemd. The rendering of the
// units is units.ServiceFile and units.SocketFile, the same properties
// socketley sends over D-Bus; this package decides what of a runtime
// carries over without socketley and how (docs/cli.md, "socketley export").
package export

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// File is one exported file: its name (no directory) and its text.
type File struct {
	Name string
	Text string
}

// minRestartSec is the restart delay of an exported runtime that restarts
// for ever (no --max-restarts) when its own is shorter: systemd's default
// RestartSec. socketley's growing delay (0, 100 ms, 200 ms … up to
// --restart-max-delay) needs the daemon, or RestartSteps= (systemd ≥ 254),
// so a crash loop of the exported unit restarts at this pace instead of
// spinning.
const minRestartSec = 100 * time.Millisecond

// ErrNotExportable is a runtime that cannot be exported: not managed by
// socketley (attached, orphan), or whose arguments and environment the
// daemon withheld.
var ErrNotExportable = errors.New("not exportable")

// Spec returns the unit description of a managed runtime as plain systemd
// runs it: rt's settings without the SOCKETLEY_* environment (the program
// runs unmanaged) and with the restart policy mapped to systemd's own
// settings (see restartSpec). The error wraps ErrNotExportable.
func Spec(rt wire.Runtime) (units.Spec, error) {
	switch {
	case !rt.Managed && rt.Orphan:
		return units.Spec{}, fmt.Errorf("%s: %w: an orphan unit (no socketley entry): its settings are unknown", rt.Name, ErrNotExportable)
	case !rt.Managed:
		return units.Spec{}, fmt.Errorf("%s: %w: an attached process, not started by socketley: there is no command to export", rt.Name, ErrNotExportable)
	case rt.Redacted:
		return units.Spec{}, fmt.Errorf("%s: %w: the daemon withheld its arguments and environment (only root and its owner, uid %d, may read them): run export as that user or as root", rt.Name, ErrNotExportable, rt.OwnerUID)
	case rt.Path == "":
		return units.Spec{}, fmt.Errorf("%s: %w: the daemon's reply has no executable path", rt.Name, ErrNotExportable)
	}
	limits, _, err := wire.ParseLimits(rt.Limits)
	if err != nil {
		return units.Spec{}, fmt.Errorf("%s: limits: %w", rt.Name, err)
	}
	var creds []units.Credential
	for _, c := range rt.Credentials {
		creds = append(creds, units.Credential{ID: c.ID, Path: c.Path})
	}
	spec := units.Spec{
		Name:             rt.Name,
		Path:             rt.Path,
		Args:             rt.Args,
		Env:              rt.Env,
		WorkingDirectory: rt.WorkDir,
		User:             rt.User,
		StopTimeout:      time.Duration(rt.StopTimeout),
		Credentials:      creds,
		EnvFiles:         rt.EnvFiles,
		Harden:           rt.Harden,
		Limits:           limits,
		Properties:       rt.Properties,
	}
	restartSpec(&spec, rt)
	return spec, nil
}

// restartSpec maps the restart policy of rt onto systemd's settings
// (docs/cli.md, "socketley export"):
//   - Restart= is the runtime's policy, RestartSec= its --restart-sec;
//   - --max-restarts N > 0: the unit gives up after N+1 starts within
//     (N+1) × (--restart-reset + RestartSec), StartLimitBurst= and
//     StartLimitIntervalSec=, which N+1 failed runs in a row always hit;
//   - no --max-restarts (restart for ever), and any runtime with --listen
//     (a start limit hit fails the socket too): no start limit, and
//     RestartSec= at least minRestartSec.
func restartSpec(spec *units.Spec, rt wire.Runtime) {
	spec.Restart = rt.Restart
	if spec.Restart == "" {
		spec.Restart = wire.DefaultRestart
	}
	spec.RestartSec = time.Duration(rt.RestartSec)
	if !spec.Restart.Restarts() {
		if len(rt.Listen) > 0 {
			spec.NoStartLimit = true
		}
		return
	}
	if rt.MaxRestarts > 0 && len(rt.Listen) == 0 {
		n := rt.MaxRestarts + 1
		spec.StartLimitBurst = n
		spec.StartLimitInterval = time.Duration(n) * (restartReset(rt) + spec.RestartSec)
		return
	}
	spec.NoStartLimit = true
	spec.RestartSec = max(spec.RestartSec, minRestartSec)
}

// restartReset is rt's --restart-reset, the default when not given.
func restartReset(rt wire.Runtime) time.Duration {
	if d := time.Duration(rt.RestartReset); d > 0 {
		return d
	}
	return wire.DefaultRestartReset
}

// restartMaxDelay is rt's --restart-max-delay, the default when not given.
func restartMaxDelay(rt wire.Runtime) time.Duration {
	if d := time.Duration(rt.RestartMaxDelay); d > 0 {
		return d
	}
	return wire.DefaultRestartMaxDelay
}

// Systemd returns the unit files of the managed runtime rt for the service
// manager of scope: socketley-NAME.service, and socketley-NAME.socket when
// it listens. The error wraps ErrNotExportable, or units.ErrInvalid for a
// setting that scope cannot have (User= in a user manager).
func Systemd(rt wire.Runtime, scope units.Scope, version string) ([]File, error) {
	spec, err := Spec(rt)
	if err != nil {
		return nil, err
	}
	svc, err := units.ServiceFile(spec, scope)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rt.Name, err)
	}
	svcName, sockName := units.Name(rt.Name), units.SocketName(rt.Name)
	svc.Comments = []string{
		fmt.Sprintf("Exported by socketley %s from runtime %s (socketley export --format systemd).", version, rt.Name),
		"It runs without socketley: no SOCKETLEY_* environment (an SDK program runs unmanaged),",
		"no health check, no attach, no crash backoff of the daemon's (see below).",
	}
	if spec.Restart.Restarts() {
		svc.Comments = append(svc.Comments, backoffComment(spec, rt)...)
	}
	wanted := "default.target"
	if scope == units.System {
		wanted = "multi-user.target"
	}
	svc.Install = []string{"WantedBy=" + wanted}
	files := []File{}
	if len(rt.Listen) > 0 {
		// The socket must be listening before its service starts, so that
		// the service inherits its addresses (LISTEN_FDS).
		svc.Unit = append(svc.Unit, "Requires="+sockName, "After="+sockName)
		sock, err := units.SocketFile(rt.Name, rt.Listen)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rt.Name, err)
		}
		sock.Comments = []string{
			fmt.Sprintf("Exported by socketley %s from runtime %s (socketley export --format systemd).", version, rt.Name),
			"It holds the --listen addresses and passes them to " + svcName + " (sd_listen_fds(3)).",
		}
		sock.Install = []string{"WantedBy=sockets.target"}
		files = append(files, File{Name: svcName, Text: svc.String()}, File{Name: sockName, Text: sock.String()})
		return files, nil
	}
	return append(files, File{Name: svcName, Text: svc.String()}), nil
}

// backoffComment says how to get socketley's growing restart delay on
// systemd ≥ 254, which has RestartSteps= and RestartMaxDelaySec=: one step
// per doubling from RestartSec to --restart-max-delay, as the daemon sets
// them there. They are comments, so that the file is valid for older
// versions (which warn about unknown settings).
func backoffComment(spec units.Spec, rt wire.Runtime) []string {
	maxDelay := restartMaxDelay(rt)
	sec := max(spec.RestartSec, time.Millisecond)
	if maxDelay <= sec {
		return nil
	}
	steps := int(math.Ceil(math.Log2(float64(maxDelay) / float64(sec))))
	return []string{
		fmt.Sprintf("socketley restarts a crash loop after a growing delay up to %s (--restart-max-delay);", maxDelay),
		"systemd >= 254 does the same with these two lines added to [Service]:",
		fmt.Sprintf("  RestartSteps=%d", steps),
		fmt.Sprintf("  RestartMaxDelaySec=%s", wire.FormatTimespan(maxDelay)),
	}
}
