package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// Listen sockets (add --listen). A runtime with listen addresses gets the
// transient socket unit socketley-NAME.socket next to its service: systemd
// binds the addresses and keeps them for as long as the runtime is
// registered and started, and passes them to every process of the service
// (LISTEN_FDS, sd_listen_fds(3)). restart, upgrade, a crash (kill -9), a
// health restart and the daemon's own restarts keep the socket, so clients
// connecting meanwhile wait in its queue; while the service is down, a
// connection starts it. stop, remove and giving up after --max-restarts
// stop the socket first (else it would start the service again), then the
// service; start creates it again, and so does the reconcile after a reboot.
//
// systemd keeps the service loaded with the properties it was created with
// for as long as the socket exists (a transient unit cannot be created
// again while it is loaded), so such a unit differs from a plain one:
//   - ExecStart is a symlink in the state directory (exe/NAME → Path), so
//     that upgrade can switch the binary under a held socket;
//   - no start rate limit: systemd fails a socket together with a service
//     that hits its start limit, which would close the addresses. On the
//     daemon's backoff (systemd < 254) the service also gets Restart=no,
//     and every restart is the daemon's (the first at once) or the
//     socket's (a connection); under systemd's own backoff (≥ 254,
//     RestartSteps=) Restart= stays the runtime's policy.

// socketError is a socket unit that systemd could not start (the address
// is in use, or the port needs privileges): bad input, nothing started.
type socketError struct{ err error }

func (e *socketError) Error() string        { return e.err.Error() }
func (e *socketError) Unwrap() error        { return e.err }
func (e *socketError) Is(target error) bool { return target == ErrInvalid }

// validateListen refuses privileged ports to a non-root caller of the system
// daemon (whose systemd binds as root), and checks that each address can be
// bound now, so that a port in use or a bad address is refused before
// anything is registered.
//
// held are addresses not probed: those the runtime being replaced holds
// (add's Check, replace): they are the runtime's own.
func (m *Manager) validateListen(caller Caller, s *wire.AddSpec, held ...string) error {
	if len(s.Listen) == 0 {
		s.Listen = nil
		return nil
	}
	out := s.Listen // normalized by wire.AddSpec.Check
	if m.cfg.Mode == paths.System && !caller.root() {
		low := unprivilegedPortStart()
		for _, n := range out {
			if p := listenAddrPort(n); p < low {
				return errorf(ErrDenied, "add: --listen %s: port %d is privileged (below %d, net.ipv4.ip_unprivileged_port_start): "+
					"only root may have the system daemon listen there; use a port of %d or above", n, p, low, low)
			}
		}
	}
	for _, n := range out {
		if slices.Contains(held, n) {
			continue
		}
		if err := probeListen(n); err != nil {
			return errorf(ErrInvalid, "add: --listen %s: cannot listen there: %v", n, err)
		}
	}
	return nil
}

// listenAddrPort returns the port of a normalized listen address.
func listenAddrPort(addr string) int {
	p := addr
	if _, port, err := net.SplitHostPort(addr); err == nil {
		p = port
	}
	n, _ := strconv.Atoi(p)
	return n
}

// unprivilegedPortStart is the lowest port a process without
// CAP_NET_BIND_SERVICE may bind (1024 when the sysctl cannot be read).
func unprivilegedPortStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}

// probeListen binds and closes addr (ListenStream= form).
func probeListen(addr string) error {
	a := addr
	if _, _, err := net.SplitHostPort(addr); err != nil {
		a = ":" + addr // PORT alone: every address
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) {
			return fmt.Errorf("%s: %w", se.Syscall, se.Err)
		}
		return err
	}
	return ln.Close()
}

// exeLink is the ExecStart path of name's listen unit.
func (m *Manager) exeLink(name string) string {
	return filepath.Join(m.cfg.StateDir, "exe", name)
}

// setExeLink points the runtime's exe link at path (atomically: a new link
// renamed over the old one).
func (m *Manager) setExeLink(name, path string) error {
	link := m.exeLink(name)
	perm := os.FileMode(0o700)
	if m.cfg.Mode == paths.System {
		perm = 0o755 // units may run as other users
	}
	if err := os.MkdirAll(filepath.Dir(link), perm); err != nil {
		return fmt.Errorf("exe link: %w", err)
	}
	if cur, err := os.Readlink(link); err == nil && cur == path {
		return nil
	}
	// The temp name starts with '.', which no runtime name may: it can
	// never be (or be replaced by) another runtime's link ("api.new").
	tmp := filepath.Join(filepath.Dir(link), "."+name+".tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(path, tmp); err != nil {
		return fmt.Errorf("exe link: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("exe link: %w", err)
	}
	if err := syncDir(filepath.Dir(link)); err != nil {
		return fmt.Errorf("exe link: %w", err)
	}
	return nil
}

// removeExeLink removes the runtime's exe link, if any.
func (m *Manager) removeExeLink(name string) {
	if err := os.Remove(m.exeLink(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("remove exe link", "name", name, "err", err)
	}
}

// listenSpec is the unit description of a runtime with listen addresses
// (see the top of this file).
func (m *Manager) listenSpec(e *Entry) units.Spec {
	spec := m.spec(e)
	spec.Path = m.exeLink(e.Name)
	if spec.RestartSteps == 0 {
		spec.Restart = wire.RestartNo
	}
	spec.StartLimitBurst, spec.StartLimitInterval, spec.NoStartLimit = 0, 0, true
	return spec
}

// startListen makes e's socket listen (creating it and the service's unit
// when they are not loaded) and starts the service.
func (m *Manager) startListen(ctx context.Context, sd Systemd, e *Entry) error {
	if err := m.setExeLink(e.Name, e.Path); err != nil {
		return err
	}
	if err := sd.StartSocket(ctx, m.listenSpec(e), e.Listen); err != nil {
		var je *units.JobError
		if errors.As(err, &je) {
			return &socketError{fmt.Errorf("systemd could not listen on %s (%s): the address is in use, or the port is privileged; "+
				"journalctl -u %s says which: %w", strings.Join(e.Listen, " "), units.SocketName(e.Name), units.SocketName(e.Name), err)}
		}
		return err
	}
	return sd.StartLoaded(ctx, e.Name)
}

// stopListen stops e's socket, if it has one. Stop the service after it
// (stopUnit): a socket that still listens starts the service again at the
// next connection.
func (m *Manager) stopListen(ctx context.Context, e *Entry) error {
	if len(e.Listen) == 0 || !e.Managed {
		return nil
	}
	sd, err := m.systemd()
	if err != nil {
		return err
	}
	return sd.StopSocket(ctx, e.Name)
}

// dropListen undoes an add whose socket could not be started: socket,
// service and exe link go.
func (m *Manager) dropListen(ctx context.Context, e *Entry) {
	if len(e.Listen) == 0 {
		return
	}
	if err := m.stopListen(ctx, e); err != nil {
		m.log.Warn("undo add: stop socket", "name", e.Name, "err", err)
	}
	if sd, err := m.systemd(); err == nil {
		if err := sd.Stop(ctx, e.Name); err != nil && !errors.Is(err, units.ErrNoSuchUnit) {
			m.log.Warn("undo add: stop", "name", e.Name, "err", err)
		}
		_ = sd.ResetFailed(ctx, e.Name)
	}
	m.removeExeLink(e.Name)
}

// syncExeLink points a listen runtime's exe link at its path (reconcile: a
// daemon that died between persisting an upgrade and switching the link).
func (m *Manager) syncExeLink(e *Entry) {
	if len(e.Listen) == 0 || !e.Managed || e.Desired == DesiredRemoved {
		return
	}
	if err := m.setExeLink(e.Name, e.Path); err != nil {
		m.log.Error("reconcile: exe link", "name", e.Name, "err", err)
	}
}

// gaveUp reports whether the crash backoff gave up on e.
func gaveUp(e *Entry) bool { return e.Backoff != nil && e.Backoff.GaveUp }

// closeGivenUp stops the socket of a listen runtime that the crash backoff
// gave up on (--max-restarts), so that connections no longer start it: it
// stays down until socketley start. The caller holds name's lock.
func (m *Manager) closeGivenUp(ctx context.Context, name string) {
	e, ok := m.entry(name)
	if !ok || len(e.Listen) == 0 || !gaveUp(e) {
		return
	}
	if err := m.stopListen(ctx, e); err != nil {
		m.log.Error("crash loop: stop the socket of a runtime given up on", "name", name, "err", err)
		return
	}
	m.log.Warn("crash loop: closed the socket of a runtime given up on; socketley start opens it again", "name", name, "socket", units.SocketName(name))
}

// closeGivenUpAsync is closeGivenUp for the daemon's loop, which holds no
// lock: it runs on its own goroutine under name's lock.
func (m *Manager) closeGivenUpAsync(ctx context.Context, name string) {
	m.heals.Add(1)
	go func() {
		defer m.heals.Done()
		unlock := m.locks.lock(name)
		defer unlock()
		m.closeGivenUp(ctx, name)
	}()
}

// reconcileListen brings a listen runtime's socket in line with its entry
// at reconcile: closed for a runtime that is stopped or given up on, open
// for one that should run (also while it waits in the crash backoff: the
// socket is what starts it at the next connection). A service that runs
// without its socket (stopped outside socketley) is left running: its next
// restart opens the socket again. The caller holds e's lock.
func (m *Manager) reconcileListen(ctx context.Context, e *Entry) {
	if len(e.Listen) == 0 || !e.Managed || e.Desired == DesiredRemoved {
		return
	}
	log := m.log.With("name", e.Name, "socket", units.SocketName(e.Name))
	m.syncExeLink(e)
	sd, err := m.systemd()
	if err != nil {
		return
	}
	if e.Desired != DesiredRunning || gaveUp(e) {
		if err := sd.StopSocket(ctx, e.Name); err != nil {
			log.Error("reconcile: stop the socket", "err", err)
		}
		return
	}
	active, err := sd.SocketActive(ctx, e.Name)
	if err != nil || active {
		if err != nil {
			log.Error("reconcile: socket state", "err", err)
		}
		return
	}
	if st, err := sd.Status(ctx, e.Name); err == nil && isUp(st) {
		log.Warn("reconcile: the service runs without its socket (stopped outside socketley?); its next restart opens it again")
		return
	}
	if err := sd.StartSocket(ctx, m.listenSpec(e), e.Listen); err != nil {
		log.Error("reconcile: open the socket", "err", err)
		return
	}
	log.Info("reconcile: opened the socket")
}
