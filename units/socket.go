package units

import (
	"context"
	"errors"
	"fmt"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/socketley/socketley/internal/wire"
)

// Socket units: a runtime with listen addresses gets socketley-NAME.socket
// next to its service. systemd binds the addresses and keeps them open for
// as long as the socket unit runs; the service inherits them (LISTEN_FDS,
// sd_listen_fds(3)) every time it starts, so a connection that arrives while
// the service restarts waits in the socket's queue, and one that arrives
// while the service is down starts it.
//
// The socket names the service by its name (socketley-NAME.socket
// triggers socketley-NAME.service), and systemd keeps that service loaded,
// with the properties it was created with, for as long as the socket is
// loaded: StartSocket creates both (the service as an auxiliary unit, not
// started) and StartLoaded starts the service. Stop the socket first
// (StopSocket), then the service; the service is then unloaded.

const socketSuffix = ".socket"

// SocketName returns the socket unit of a runtime: "socketley-" + runtime +
// ".socket". It does not validate runtime.
func SocketName(runtime string) string {
	return unitPrefix + runtime + socketSuffix
}

// socketProperties returns the properties of socketley-NAME.socket.
func socketProperties(name string, listen []string) ([]sdbus.Property, error) {
	if len(listen) == 0 {
		return nil, fmt.Errorf("%w: no listen address", ErrInvalid)
	}
	type listenPair struct {
		Type, Addr string
	}
	var pairs []listenPair
	for _, a := range listen {
		n, err := wire.NormalizeListen(a)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		pairs = append(pairs, listenPair{"Stream", n})
	}
	return []sdbus.Property{
		prop("Description", "socketley listen socket of runtime "+name),
		// ListenStream= each address (systemd-run --socket-property=ListenStream=…
		// sends the same a(ss)).
		prop("Listen", pairs),
		// A socket triggered by traffic while the service is down must never
		// give up on it: no trigger limit (default 20 starts in 2 s).
		prop("TriggerLimitIntervalUSec", uint64(0)),
		prop("CollectMode", "inactive-or-failed"),
	}, nil
}

// socketServiceProperties returns the properties of a service that a
// socket triggers: spec's, without a start rate limit. systemd fails the
// socket (closing its addresses) when its service hits the start limit,
// and a socket starts its service on every connection while the service is
// down, so the limit is turned off for such a service (StartLimitIntervalSec=0).
func socketServiceProperties(spec Spec, scope Scope) ([]sdbus.Property, error) {
	props, err := properties(spec, scope)
	if err != nil {
		return nil, err
	}
	out := props[:0]
	for _, p := range props {
		if p.Name != "StartLimitBurst" && p.Name != "StartLimitIntervalUSec" {
			out = append(out, p)
		}
	}
	return append(out, prop("StartLimitIntervalUSec", uint64(0))), nil
}

// StartSocket makes socketley-NAME.socket (NAME = spec.Name) listen on
// listen (wire.NormalizeListen's forms) and trigger socketley-NAME.service. When
// the service is not loaded it is created from spec as an auxiliary unit of
// the socket, without being started (see StartLoaded); a failed leftover of
// the service is cleared first, so the service gets spec's properties; an
// inactive one kept loaded by the socket's trigger is kept as it is. A
// socket that is already active is left alone. Results:
//   - nil: the socket listens.
//   - errors.Is(err, ErrInvalid): bad spec or address.
//   - errors.Is(err, ErrUnitExists): the service runs without this socket
//     (systemd refuses to start a socket whose service is active): stop the
//     service first.
//   - *JobError (Job "start"): systemd could not listen — typically the
//     address is in use or the port needs privileges; the failed socket is
//     cleared. Its journal has systemd's reason.
//   - a context error.
func (c *Conn) StartSocket(ctx context.Context, spec Spec, listen []string) error {
	sock := SocketName(spec.Name)
	sprops, err := socketProperties(spec.Name, listen)
	if err != nil {
		return fmt.Errorf("start %s: %w", sock, err)
	}
	svcProps, err := socketServiceProperties(spec, c.scope)
	if err != nil {
		return fmt.Errorf("start %s: %w", sock, err)
	}
	ctx, cancel := withDefault(ctx, jobTimeout)
	defer cancel()

	if st, err := c.socketState(ctx, spec.Name); err == nil && (st == ActiveActive || st == ActiveActivating || st == ActiveReloading) {
		return nil
	}
	// A failed socket from an earlier attempt blocks the name.
	if err := mapErr(c.sd.ResetFailedUnitContext(ctx, sock)); err != nil && !errors.Is(err, ErrNoSuchUnit) {
		return c.wrap("start", sock, err)
	}
	aux := []sdbus.PropertyCollection{{Name: Name(spec.Name), Properties: svcProps}}
	result, err := c.startTransientAux(ctx, sock, sprops, aux)
	if errors.Is(err, ErrUnitExists) {
		// The service is loaded: running from before, failed (a failed
		// unit stays loaded until reset), or inactive and kept by a socket
		// that is going away.
		st, serr := c.Status(ctx, spec.Name)
		switch {
		case serr == nil && (st.ActiveState == ActiveActive || st.ActiveState == ActiveActivating ||
			st.ActiveState == ActiveReloading || st.ActiveState == ActiveDeactivating):
			return fmt.Errorf("start %s: %w: %s is %s without its socket; stop it first", sock, ErrUnitExists, Name(spec.Name), st.ActiveState)
		case serr == nil && st.ActiveState == ActiveFailed:
			// Cleared, it is unloaded: created again from spec.
			_ = c.sd.ResetFailedUnitContext(ctx, Name(spec.Name))
			result, err = c.startTransientAux(ctx, sock, sprops, aux)
		}
		if errors.Is(err, ErrUnitExists) {
			// A socket of its own name triggers the loaded service as it is.
			result, err = c.startTransientAux(ctx, sock, sprops, nil)
		}
	}
	if err != nil {
		return c.wrap("start", sock, err)
	}
	if result == JobDone {
		return nil
	}
	je := &JobError{Unit: sock, Job: "start", Result: result}
	qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), queryTimeout)
	defer qcancel()
	_ = c.sd.ResetFailedUnitContext(qctx, sock)
	return je
}

// startTransientAux starts unit with aux units and waits for its job result.
func (c *Conn) startTransientAux(ctx context.Context, unit string, props []sdbus.Property, aux []sdbus.PropertyCollection) (JobResult, error) {
	ch := make(chan string, 1)
	if _, err := c.sd.StartTransientUnitAux(ctx, unit, "fail", props, aux, ch); err != nil {
		return "", mapErr(err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for the start job: %w", ctx.Err())
	}
}

// socketState returns the ActiveState of the runtime's socket unit;
// ErrNoSuchUnit when it is not loaded.
func (c *Conn) socketState(ctx context.Context, name string) (ActiveState, error) {
	sock := SocketName(name)
	p, err := c.sd.GetUnitPropertiesContext(ctx, sock)
	if err != nil {
		return "", mapErr(err)
	}
	if ls, _ := p["LoadState"].(string); ls == LoadNotFound {
		return "", ErrNoSuchUnit
	}
	st, _ := p["ActiveState"].(string)
	return st, nil
}

// SocketActive reports whether the runtime's socket unit is active
// (listening, or running: its service holds the sockets).
func (c *Conn) SocketActive(ctx context.Context, name string) (bool, error) {
	if _, err := unitOf("socket state", name); err != nil {
		return false, err
	}
	ctx, cancel := withDefault(ctx, queryTimeout)
	defer cancel()
	st, err := c.socketState(ctx, name)
	if errors.Is(err, ErrNoSuchUnit) {
		return false, nil
	}
	if err != nil {
		return false, c.wrap("socket state", SocketName(name), err)
	}
	return st == ActiveActive, nil
}

// StartLoaded starts the runtime's service as it is loaded (StartUnit, job
// mode "replace"), without creating it: the service of a socket made by
// StartSocket. Starting a service that is already up succeeds at once.
// Results as for Start (a *JobError leaves the unit as systemd left it: a
// socket keeps it loaded).
func (c *Conn) StartLoaded(ctx context.Context, name string) error {
	return c.runJob(ctx, "start", name, c.sd.StartUnitContext)
}

// StopSocket stops the runtime's socket unit (closing its addresses) and
// waits for the job; a socket that is not loaded is already stopped (nil).
// Stop the service after it: a socket that still listens would start the
// service again on the next connection.
func (c *Conn) StopSocket(ctx context.Context, name string) error {
	if _, err := unitOf("stop", name); err != nil {
		return err
	}
	sock := SocketName(name)
	ctx, cancel := withDefault(ctx, jobTimeout)
	defer cancel()
	ch := make(chan string, 1)
	if _, err := c.sd.StopUnitContext(ctx, sock, "replace", ch); err != nil {
		if err := mapErr(err); errors.Is(err, ErrNoSuchUnit) {
			return nil
		}
		return c.wrap("stop", sock, err)
	}
	select {
	case r := <-ch:
		_ = c.sd.ResetFailedUnitContext(ctx, sock)
		if r != JobDone {
			return &JobError{Unit: sock, Job: "stop", Result: r}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: waiting for the stop job: %w", sock, ctx.Err())
	}
}
