package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// handle runs one request for caller and withholds from the reply what
// the caller may not read (see redact).
func (m *Manager) handle(ctx context.Context, caller Caller, req wire.Request) (*wire.Result, error) {
	res, err := m.handleRequest(ctx, caller, req)
	m.emitRequest(caller, req, res, err)
	if res != nil {
		redact(caller, res.Runtimes)
	}
	return res, err
}

// mayRead reports whether caller may read the arguments and environment
// of r: root, and the uid that added or attached it. An orphan unit has no
// owner: only root.
func mayRead(caller Caller, r wire.Runtime) bool {
	return caller.root() || !r.Orphan && r.OwnerUID == caller.UID
}

// redact clears the arguments and environment of the runtimes caller may
// not read (they hold tokens and passwords) and marks them Redacted. Every
// member of the socket group may list every runtime; only root and the
// owner see what it was started with.
func redact(caller Caller, rts []wire.Runtime) {
	for i := range rts {
		if !mayRead(caller, rts[i]) {
			rts[i].Args, rts[i].Env, rts[i].Redacted = nil, nil, true
		}
	}
}

// handleRequest runs one request for caller.
func (m *Manager) handleRequest(ctx context.Context, caller Caller, req wire.Request) (*wire.Result, error) {
	if err := checkNames(req.Names); err != nil {
		return nil, err
	}
	if err := checkFlags(req); err != nil {
		return nil, err
	}
	switch req.Cmd {
	case wire.CmdList:
		rts := m.list(false)
		if req.Mine {
			rts = slices.DeleteFunc(rts, func(r wire.Runtime) bool {
				return !r.Managed || r.Orphan || !caller.root() && r.OwnerUID != caller.UID
			})
		}
		return &wire.Result{Runtimes: rts}, nil
	case wire.CmdPS:
		return &wire.Result{Runtimes: m.list(true)}, nil
	case wire.CmdShow:
		return m.show(caller, req.Names)
	case wire.CmdStats:
		return m.stats(), nil
	case wire.CmdEvents:
		return m.listEvents(ctx, caller, req)
	case wire.CmdWhy:
		return m.why(caller, req.Names)
	case wire.CmdVersion:
		v := m.cfg.Version
		return &wire.Result{Version: &v, Message: m.cfg.Mode.String()}, nil
	case wire.CmdAdd:
		if req.Add == nil {
			return nil, errorf(ErrInvalid, "add: missing runtime description")
		}
		if req.Check {
			return m.checkAdd(caller, *req.Add)
		}
		if req.Replace {
			return m.replace(ctx, caller, *req.Add)
		}
		return m.add(ctx, caller, *req.Add, req.Wait, time.Duration(req.Timeout))
	case wire.CmdSet:
		if req.Set == nil {
			return nil, errorf(ErrInvalid, "set: missing change description")
		}
		return m.set(ctx, caller, *req.Set)
	case wire.CmdUpgrade:
		return m.upgrade(ctx, caller, req.Names, req.Path, time.Duration(req.Timeout))
	case wire.CmdStart:
		return m.start(ctx, caller, req.Names, req.Wait, time.Duration(req.Timeout))
	case wire.CmdStop:
		return m.stop(ctx, caller, req.Names)
	case wire.CmdRestart:
		return m.restart(ctx, caller, req.Names, req.Wait, time.Duration(req.Timeout))
	case wire.CmdRemove:
		return m.remove(ctx, caller, req.Names)
	case wire.CmdAttach:
		if req.Attach == nil {
			return nil, errorf(ErrInvalid, "attach: missing attach description")
		}
		return m.attach(ctx, caller, *req.Attach)
	case "":
		return nil, errorf(ErrInvalid, "empty command")
	}
	return nil, errorf(ErrInvalid, "unknown command %q", req.Cmd)
}

// checkNames refuses a request with more names than wire.MaxNames or more
// glob patterns than wire.MaxPatterns, before anything is matched: each
// pattern is matched against every registered name.
func checkNames(names []string) error {
	if len(names) > wire.MaxNames {
		return errorf(ErrInvalid, "%d runtime names in one request; at most %d are accepted: split the request, or use a pattern (e.g. 'web-*')",
			len(names), wire.MaxNames)
	}
	patterns := 0
	for _, n := range names {
		if isPattern(n) {
			patterns++
		}
	}
	if patterns > wire.MaxPatterns {
		return errorf(ErrInvalid, "%d glob patterns in one request; at most %d glob patterns are accepted: combine them (e.g. 'web-*' for web-1 and web-2) or split the request",
			patterns, wire.MaxPatterns)
	}
	return nil
}

// validateAdd checks an add request at the boundary and fills defaults:
// the rules of the request itself are wire.AddSpec.Check's; what follows
// needs the file system or the caller.
func (m *Manager) validateAdd(caller Caller, s *wire.AddSpec) error {
	if err := s.Check(); err != nil {
		return err
	}
	// The path is looked up with the caller's rights, not the daemon's: a
	// caller learns nothing about files it could not look at itself.
	fi, err := statAs(caller, s.Path)
	switch {
	case errors.Is(err, errUnreachable):
		return errorf(ErrInvalid, "%s does not exist or uid %d may not reach it (every directory on the way needs search (x) permission for you)", s.Path, caller.UID)
	case errors.Is(err, os.ErrNotExist):
		return errorf(ErrInvalid, "no such file: %s", s.Path)
	case err != nil:
		return errorf(ErrInvalid, "%s: %v", s.Path, err)
	case fi.IsDir():
		return errorf(ErrInvalid, "%s is a directory; give the path of an executable file", s.Path)
	case !fi.Mode().IsRegular():
		return errorf(ErrInvalid, "%s is not a regular file", s.Path)
	case fi.Mode().Perm()&0o111 == 0:
		return errorf(ErrInvalid, "%s is not executable (chmod +x %s)", s.Path, s.Path)
	}
	if uid, gid := ownerGroup(fi); !mayAccess(caller, fi.Mode(), uid, gid, permExec) {
		return errorf(ErrInvalid, "%s is not executable by uid %d (it is %s, owner %d, group %d)", s.Path, caller.UID, fi.Mode().Perm(), uid, gid)
	}
	if err := m.checkCredentials(caller, s.Credentials); err != nil {
		return err
	}
	if err := m.checkEnvFiles(caller, s.EnvFiles); err != nil {
		return err
	}
	if s.WorkDir != "" {
		fi, err := statAs(caller, s.WorkDir)
		if err != nil || !fi.IsDir() {
			return errorf(ErrInvalid, "--workdir %s does not exist, is not a directory or uid %d may not reach it", s.WorkDir, caller.UID)
		}
	}
	if s.RunAs != "" {
		if m.cfg.Mode != paths.System {
			return errorf(ErrInvalid, "--run-as works only with the system daemon; a user daemon runs everything as its own user")
		}
		if !caller.root() {
			return errorf(ErrDenied, "only root may choose another user with --run-as")
		}
		if _, err := lookupUser(s.RunAs); err != nil {
			return errorf(ErrInvalid, "--run-as: unknown user %q", s.RunAs)
		}
	}
	return nil
}

// readableBy reports whether path is a regular file caller may read, looked
// up with caller's rights (statAs): the one check of the files systemd
// reads for a unit at every start (--credential, --env-file). Absent and
// not permitted are alike, so that add is no file-existence oracle.
func readableBy(caller Caller, path string) bool {
	fi, err := statAs(caller, path)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	uid, gid := ownerGroup(fi)
	return mayAccess(caller, fi.Mode(), uid, gid, permRead)
}

// checkCredentials checks add's --credential entries. systemd reads each
// file at every start of the unit, with its manager's rights: the system
// daemon's systemd as root, so it takes credentials from root only. A
// check of another caller's rights now would not hold at the next start
// (the file, or a directory on its way, can be swapped for a link to
// /etc/shadow). A user daemon's systemd reads the file as that user, who
// is the only non-root caller; the file is still checked with the caller's
// rights, with one answer for absent and not permitted.
func (m *Manager) checkCredentials(caller Caller, creds []wire.Credential) error {
	if len(creds) == 0 {
		return nil
	}
	if m.cfg.Mode == paths.System && !caller.root() {
		return errorf(ErrDenied, "--credential: only root may add credentials to a runtime of the system daemon "+
			"(systemd reads the file as root at every start); ask root to add the runtime, or use --env for what is not secret")
	}
	for _, c := range creds {
		if readableBy(caller, c.Path) {
			continue
		}
		return errorf(ErrInvalid, "--credential %s: %s does not exist, is not a regular file or uid %d may not read it "+
			"(give a file you can read, and search (x) permission on every directory on the way)", c.ID, c.Path, caller.UID)
	}
	return nil
}

// checkEnvFiles checks add's --env-file paths, with the policy of
// checkCredentials and for its reason: systemd reads the file at every
// start with its manager's rights (root for the system daemon), so the
// system daemon takes environment files from root only; a user daemon's
// caller is its user, whose rights the file is checked with, with one
// answer for absent and not permitted.
func (m *Manager) checkEnvFiles(caller Caller, files []string) error {
	if len(files) == 0 {
		return nil
	}
	if m.cfg.Mode == paths.System && !caller.root() {
		return errorf(ErrDenied, "--env-file: only root may give environment files to a runtime of the system daemon "+
			"(systemd reads the file as root at every start); ask root to add the runtime, or use --env")
	}
	for _, p := range files {
		if readableBy(caller, p) {
			continue
		}
		return errorf(ErrInvalid, "--env-file %s does not exist, is not a regular file or uid %d may not read it "+
			"(give a file you can read, and search (x) permission on every directory on the way)", p, caller.UID)
	}
	return nil
}

// runUser is the User= of a unit added by caller in system mode.
func (m *Manager) runUser(caller Caller, s wire.AddSpec) (string, error) {
	if m.cfg.Mode != paths.System {
		return "", nil
	}
	if s.RunAs != "" {
		return s.RunAs, nil
	}
	if caller.root() {
		return "", nil
	}
	u, err := lookupUserID(strconv.Itoa(caller.UID))
	if err != nil {
		return "", errorf(ErrInvalid, "uid %d has no user name; add it with a name in /etc/passwd", caller.UID)
	}
	return u.Username, nil
}

func (m *Manager) add(ctx context.Context, caller Caller, s wire.AddSpec, wait bool, timeout time.Duration) (*wire.Result, error) {
	runAs, limits, err := m.checkSpec(caller, &s)
	if err != nil {
		return nil, err
	}
	unlock := m.locks.lock(s.Name)
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	if st, ok := m.snapshot()[s.Name]; ok && st.LoadState != "not-found" {
		m.mu.RLock()
		known := m.reg.has(s.Name)
		m.mu.RUnlock()
		if !known {
			return nil, errOrphanName(s.Name)
		}
	}
	e := &Entry{Name: s.Name, Managed: true, OwnerUID: caller.UID, Desired: DesiredStopped, Created: time.Now().UTC().Truncate(time.Second)}
	e.setSpec(s, runAs, limits)
	if s.Start {
		e.Desired, e.Started = DesiredRunning, true
	}
	err = m.update(func(r *Registry) error {
		if r.has(s.Name) {
			return errNameTaken(s.Name)
		}
		if err := m.checkOwned(caller, r, "add"); err != nil {
			return err
		}
		r.put(e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	log := m.log.With("name", s.Name, "unit", units.Name(s.Name))
	if !s.Start {
		log.Info("added", "path", s.Path)
		return &wire.Result{Runtimes: []wire.Runtime{m.view(s.Name)}, Message: "added " + s.Name}, nil
	}
	if err := m.startUnit(ctx, e); err != nil {
		var serr *socketError
		if errors.Is(err, units.ErrInvalid) || errors.Is(err, units.ErrUnitExists) || errors.As(err, &serr) {
			// Nothing was started (or the unit is not ours, or systemd
			// could not listen on a --listen address): undo.
			m.dropListen(ctx, e)
			if uerr := m.update(func(r *Registry) error { r.del(s.Name); return nil }); uerr != nil {
				log.Error("undo add", "err", uerr)
			}
			return nil, fmt.Errorf("add %s: %w", s.Name, err)
		}
		// Anything else may have started the unit, or left it to systemd's
		// Restart= and the crash backoff: the entry stays, so that there is
		// never an unregistered unit and a runtime that should run is not
		// lost. The error says what happened and what follows.
		log.Warn("added; the start failed", "path", s.Path, "err", err)
		res := &wire.Result{Runtimes: []wire.Runtime{m.view(s.Name)}}
		// Unlock first: supervise skips a locked runtime.
		unlock()
		locked = false
		m.poke()
		return res, fmt.Errorf("add %s: registered, but %w", s.Name, m.explainStartErr(e, err))
	}
	log.Info("added and started", "path", s.Path)
	if wait {
		// Unlock first: the runtime's attach takes the same lock.
		unlock()
		locked = false
		if err := m.waitRunning(ctx, s.Name, timeout); err != nil {
			return &wire.Result{Runtimes: []wire.Runtime{m.view(s.Name)}},
				&msgError{err: err, msg: fmt.Sprintf("add %s: %v; %s", s.Name, err, whatNext(e, err))}
		}
	}
	return &wire.Result{Runtimes: []wire.Runtime{m.view(s.Name)}, Message: "started " + s.Name}, nil
}

// checkSpec makes every check of add on s but the name's (held: listen
// addresses not probed, see validateListen) and returns the user the unit
// runs as and the parsed limits.
func (m *Manager) checkSpec(caller Caller, s *wire.AddSpec, held ...string) (string, wire.Limits, error) {
	if err := m.validateAdd(caller, s); err != nil {
		return "", wire.Limits{}, err
	}
	if err := m.validateListen(caller, s, held...); err != nil {
		return "", wire.Limits{}, err
	}
	runAs, err := m.runUser(caller, *s)
	if err != nil {
		return "", wire.Limits{}, err
	}
	limits, _, err := wire.ParseLimits(s.Limits) // checked by validateAdd
	if err != nil {
		return "", wire.Limits{}, err
	}
	if err := m.checkLimits(caller, limits); err != nil {
		return "", wire.Limits{}, err
	}
	if err := m.checkProperties(caller, s.Properties); err != nil {
		return "", wire.Limits{}, err
	}
	return runAs, limits, nil
}

// checkFlags refuses a request field given to a command it does not
// apply to, as unknown fields are refused: ignored, it would do something
// else than asked.
func checkFlags(req wire.Request) error {
	switch {
	case req.Mine && req.Cmd != wire.CmdList:
		return errorf(ErrInvalid, "%q: mine is for ls only", req.Cmd)
	case (req.Check || req.Replace) && req.Cmd != wire.CmdAdd:
		return errorf(ErrInvalid, "%q: check and replace are for add only", req.Cmd)
	case req.Replace && (req.Wait || req.Timeout != 0):
		return errorf(ErrInvalid, "add with replace does not wait: leave wait and timeout out, then ask with show or start --wait")
	}
	return nil
}

// errNameTaken and errOrphanName are add's refusals of a name in use: by
// a registered runtime, or by a unit socketley has no entry for.
func errNameTaken(name string) error {
	return errorf(ErrExists, "add: runtime already exists: %s; choose another --name, or socketley remove %s first", name, name)
}

func errOrphanName(name string) error {
	return errorf(ErrExists, "add: runtime already exists: %s is the name of an unregistered unit %s (an orphan in socketley ls); choose another --name, or stop that unit with systemctl", name, units.Name(name))
}

// checkAdd answers add with Check: every check add makes on s, nothing
// registered or started. apply checks its creates and its replacements
// this way, so the name may be one the caller could replace: its own
// managed runtime (root: any managed runtime), whose listen addresses are
// not probed, since they are its own. A name held by anything else
// (another user's runtime, an attached process, a unit socketley has no
// entry for) is refused as add refuses it.
func (m *Manager) checkAdd(caller Caller, s wire.AddSpec) (*wire.Result, error) {
	var held []string
	m.mu.RLock()
	e, ok := m.reg.get(s.Name)
	switch {
	case ok && e.Managed && authorizeEntry(caller, e, "add") == nil:
		held = slices.Clone(e.Listen)
	case ok:
		m.mu.RUnlock()
		return nil, errNameTaken(s.Name)
	}
	m.mu.RUnlock()
	if st, unit := m.snapshot()[s.Name]; !ok && unit && st.LoadState != units.LoadNotFound {
		return nil, errOrphanName(s.Name)
	}
	if _, _, err := m.checkSpec(caller, &s, held...); err != nil {
		return nil, fmt.Errorf("add %s: %w", s.Name, err)
	}
	return &wire.Result{Message: "add " + s.Name + ": every check passed; nothing was changed"}, nil
}

// explainStartErr words a failed start of e, which stays registered and
// desired-running, with what happens next: the unit is left to systemd's
// Restart= and the crash backoff (never stopped), or stays down. The class
// of err (errors.Is) is kept.
func (m *Manager) explainStartErr(e *Entry, err error) error {
	return &msgError{err: err, msg: fmt.Sprintf("its start failed: %v; %s", err, whatNext(e, err))}
}

// whatNext says what follows a failed start or wait of e, which stays
// registered and desired-running, and what to do ("; next: ...", which the
// CLI puts on a line of its own after the program's last output).
func whatNext(e *Entry, err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Sprintf("%s stays registered and may still come up; next: socketley show %s says how it is doing, "+
			"socketley logs %s shows its output, socketley remove %s drops it", e.Name, e.Name, e.Name, e.Name)
	case restarts(e):
		return fmt.Sprintf("%s stays registered and is left to its restart policy (--restart %s): "+
			"socketley restarts it with the crash backoff, ls shows crash-loop meanwhile; next: %s", e.Name, e.Restart, nextSteps(e.Name))
	}
	return fmt.Sprintf("%s stays registered and is not restarted (--restart %s); next: %s", e.Name, e.Restart, nextSteps(e.Name))
}

// nextSteps is what to do about a runtime that fails to run.
func nextSteps(name string) string {
	return fmt.Sprintf("socketley logs %s shows its output; fix the program, then socketley start %s; or socketley remove %s drops it", name, name, name)
}

// unitCredentials is the LoadCredential= of an entry's unit (nil for none).
func unitCredentials(creds []wire.Credential) []units.Credential {
	var out []units.Credential
	for _, c := range creds {
		out = append(out, units.Credential{ID: c.ID, Path: c.Path})
	}
	return out
}

// spec builds the unit description of a managed entry.
func (m *Manager) spec(e *Entry) units.Spec {
	env := []string{
		"SOCKETLEY_MANAGED=1",
		"SOCKETLEY_NAME=" + e.Name,
		"SOCKETLEY_SOCKET=" + m.cfg.Socket,
	}
	env = append(env, e.Env...)
	m.mu.RLock()
	native := m.native
	m.mu.RUnlock()
	spec := units.Spec{
		Name:               e.Name,
		Description:        "socketley runtime " + e.Name,
		Path:               e.Path,
		Args:               e.Args,
		Env:                env,
		WorkingDirectory:   e.WorkDir,
		Credentials:        unitCredentials(e.Credentials),
		EnvFiles:           e.EnvFiles,
		Harden:             e.Harden,
		User:               e.User,
		Restart:            e.Restart,
		RestartSec:         time.Duration(e.RestartSec),
		StartLimitBurst:    1,
		StartLimitInterval: restartReset(e),
		StopTimeout:        stopTimeout(e),
		Limits:             e.Limits,
		Properties:         e.Properties,
	}
	// Not restarts(e): start and restart build the spec from the entry as it
	// was before they set Desired to running.
	if native && e.Managed && (e.Restart.Restarts()) {
		spec.RestartSec, spec.RestartSteps, spec.RestartMaxDelay = nativeRestart(time.Duration(e.RestartSec), restartMaxDelay(e))
		spec.StartLimitBurst, spec.StartLimitInterval, spec.NoStartLimit = 0, 0, true
	}
	return spec
}

// startUnit starts e's unit (units.Start clears a failed unit of the same name).
func (m *Manager) startUnit(ctx context.Context, e *Entry) error {
	sd, err := m.systemd()
	if err != nil {
		return err
	}
	m.mu.Lock()
	o := m.obsOf(e.Name)
	o.portDown, o.unhealthyTicks = false, 0
	m.mu.Unlock()
	if len(e.Listen) > 0 {
		err = m.startListen(ctx, sd, e)
	} else {
		err = sd.Start(ctx, m.spec(e))
	}
	if err != nil {
		return classifyStartErr(err)
	}
	m.refresh(ctx, e.Name)
	return nil
}

// refresh reads the unit of name into the unit view at once (one D-Bus
// round trip), so that the reply to start/stop and the next ls agree with
// systemd. A failure is only logged: the view catches up with the signals.
func (m *Manager) refresh(ctx context.Context, name string) {
	m.mu.RLock()
	w := m.watch
	m.mu.RUnlock()
	if w == nil {
		return
	}
	if _, err := w.Refresh(ctx, name); err != nil && !errors.Is(err, units.ErrNoSuchUnit) {
		m.log.Debug("refresh", "name", name, "err", err)
	}
}

// stopUnit stops e's unit and waits until it is inactive, that is until its
// processes are gone: SIGTERM, then SIGKILL after the runtime's stop timeout
// (the wait lasts as long as units.StopWait allows for that, unless ctx ends
// sooner). A unit that does not exist is already stopped. A failed unit (one
// killed after the stop timeout, say) is reset so it shows stopped.
func (m *Manager) stopUnit(ctx context.Context, name string) error {
	sd, err := m.systemd()
	if err != nil {
		return err
	}
	// An entry without a stop timeout was added before they existed: its
	// unit may still have systemd's default (90 s) until its next start.
	wait := units.StopWait(0)
	if e, ok := m.entry(name); ok && e.StopTimeout > 0 {
		wait = units.StopWait(time.Duration(e.StopTimeout))
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := m.foldRestarts(ctx, name); err != nil {
		return err
	}
	if err := sd.Stop(ctx, name); err != nil && !errors.Is(err, units.ErrNoSuchUnit) {
		return err
	}
	if err := sd.ResetFailed(ctx, name); err != nil && !errors.Is(err, units.ErrNoSuchUnit) {
		m.log.Debug("reset-failed", "name", name, "err", err)
	}
	m.refresh(ctx, name)
	m.mu.Lock()
	if o := m.obs[name]; o != nil {
		o.portDown, o.unhealthyTicks = false, 0
	}
	m.mu.Unlock()
	return nil
}

// foldRestarts moves the NRestarts and the last exit of name's loaded unit
// into its entry before the unit goes away (stop, or a start that replaces a
// failed unit), so that the counts survive. Nothing is written when the
// unit has nothing to keep.
func (m *Manager) foldRestarts(ctx context.Context, name string) error {
	st, ok := m.snapshot()[name]
	n := acceptedRestarts(st)
	if !ok || st.LoadState == units.LoadNotFound || (n == 0 && st.LastExit() == "") {
		return nil
	}
	return m.update(func(r *Registry) error {
		e, ok := r.edit(name)
		if !ok || !e.Managed {
			return nil
		}
		e.Restarts += n
		if le := st.LastExit(); le != "" {
			e.LastExit = le
		}
		return nil
	})
}

// resolve matches names to entries (copies) and checks the caller may act on them.
// Matching runs on the published registry without holding m.mu, so a
// large request never stalls other commands.
func (m *Manager) resolve(caller Caller, names []string, verb string) ([]*Entry, error) {
	reg := m.registry()
	matched, err := reg.match(names)
	if err != nil {
		return nil, err
	}
	es := make([]*Entry, 0, len(matched))
	for _, n := range matched {
		e, _ := reg.get(n)
		es = append(es, e.clone())
	}
	for _, e := range es {
		if err := authorizeEntry(caller, e, verb); err != nil {
			return nil, err
		}
	}
	return es, nil
}

// forEach runs op on each matched entry under its lock, collects the views
// and returns the first error (after trying all of them).
func (m *Manager) forEach(ctx context.Context, caller Caller, names []string, verb string,
	op func(ctx context.Context, e *Entry) (string, error),
) (*wire.Result, error) {
	es, err := m.resolve(caller, names, verb)
	if err != nil {
		return nil, err
	}
	res := &wire.Result{}
	var msgs []string
	var first error
	for _, e := range es {
		unlock := m.locks.lock(e.Name)
		cur, ok := m.entry(e.Name)
		var msg string
		var oerr error
		if !ok {
			oerr = errorf(ErrNotFound, "runtime %s was removed meanwhile", e.Name)
		} else {
			msg, oerr = op(ctx, cur)
		}
		unlock()
		if oerr != nil {
			m.log.Error(verb, "name", e.Name, "err", oerr)
			if first == nil {
				first = fmt.Errorf("%s %s: %w", verb, e.Name, oerr)
			}
			msgs = append(msgs, fmt.Sprintf("%s %s: %v", verb, e.Name, oerr))
			if _, ok := m.entry(e.Name); ok && verb != "remove" {
				// What it is now, for the caller to explain the failure.
				v := m.view(e.Name)
				v.Failed, v.FailedClass = oerr.Error(), wire.ClassOf(oerr)
				res.Runtimes = append(res.Runtimes, v)
			}
			continue
		}
		if msg != "" {
			msgs = append(msgs, msg)
		}
		if verb != "remove" {
			res.Runtimes = append(res.Runtimes, m.view(e.Name))
		}
	}
	res.Message = strings.Join(msgs, "\n")
	if first != nil && len(es) > 1 {
		// Say which of several failed, keeping the class of the first error.
		first = &msgError{err: first, msg: res.Message}
	}
	return res, first
}

func (m *Manager) start(ctx context.Context, caller Caller, names []string, wait bool, timeout time.Duration) (*wire.Result, error) {
	var mu sync.Mutex
	already := map[string]bool{}
	res, err := m.forEach(ctx, caller, names, "start", func(ctx context.Context, e *Entry) (string, error) {
		if !e.Managed {
			return "", errorf(ErrInvalid, "%s is an attached process (pid %d), not a managed unit; socketley cannot start it", e.Name, e.PID)
		}
		if st, ok := m.snapshot()[e.Name]; ok && isUp(st) && e.Desired == DesiredRunning {
			mu.Lock()
			already[e.Name] = true
			mu.Unlock()
			return e.Name + " is already running", nil
		}
		if err := m.update(func(r *Registry) error {
			cur, ok := r.edit(e.Name)
			if !ok {
				return errorf(ErrNotFound, "runtime %s was removed meanwhile", e.Name)
			}
			cur.Desired, cur.Started, cur.Backoff = DesiredRunning, true, nil // an operator's start retries at once
			return nil
		}); err != nil {
			return "", err
		}
		if err := m.foldRestarts(ctx, e.Name); err != nil {
			return "", err
		}
		if err := m.startUnit(ctx, e); err != nil {
			return "", m.explainStartErr(e, err)
		}
		m.log.Info("started", "name", e.Name)
		return "started " + e.Name, nil
	})
	if res != nil {
		for i := range res.Runtimes {
			res.Runtimes[i].Unchanged = already[res.Runtimes[i].Name]
		}
	}
	if err != nil {
		m.poke() // a failed start is the backoff's now; the runtime is unlocked
	}
	if err != nil || !wait {
		return res, err
	}
	return res, m.waitAll(ctx, "start", res, timeout)
}

func (m *Manager) stop(ctx context.Context, caller Caller, names []string) (*wire.Result, error) {
	var signalled []*Entry
	res, err := m.forEach(ctx, caller, names, "stop", func(ctx context.Context, e *Entry) (string, error) {
		if !e.Managed {
			if err := terminate(caller, e); err != nil {
				return "", err
			}
			m.log.Info("sent SIGTERM to attached process", "name", e.Name, "pid", e.PID)
			signalled = append(signalled, e)
			return "", nil
		}
		if err := m.update(func(r *Registry) error {
			cur, ok := r.edit(e.Name)
			if !ok {
				return errorf(ErrNotFound, "runtime %s was removed meanwhile", e.Name)
			}
			cur.Desired, cur.Backoff = DesiredStopped, nil
			return nil
		}); err != nil {
			return "", err
		}
		if err := m.stopListen(ctx, e); err != nil {
			return "", err
		}
		if err := m.stopUnit(ctx, e.Name); err != nil {
			return "", err
		}
		m.log.Info("stopped", "name", e.Name)
		return "stopped " + e.Name, nil
	})
	// Like a unit stop, return once each signalled process is gone (or say
	// it is not). This waits without the runtime's lock: a process detaches
	// (remove NAME) as it exits, as the C++ SDK does, and that takes the lock.
	var msgs []string
	if res != nil && res.Message != "" {
		msgs = append(msgs, res.Message)
	}
	for _, e := range signalled {
		if waitExit(ctx, e, attachedStopWait) {
			msgs = append(msgs, fmt.Sprintf("stopped %s (pid %d exited after SIGTERM)", e.Name, e.PID))
		} else {
			msgs = append(msgs, fmt.Sprintf("sent SIGTERM to %s (pid %d); it is still running after %s", e.Name, e.PID, attachedStopWait))
		}
		for i, r := range res.Runtimes {
			if r.Name == e.Name {
				if _, ok := m.entry(e.Name); ok {
					res.Runtimes[i] = m.view(e.Name)
				} else {
					res.Runtimes[i].Status, res.Runtimes[i].PID = wire.StatusStopped, 0
				}
			}
		}
	}
	if res != nil {
		res.Message = strings.Join(msgs, "\n")
	}
	return res, err
}

func (m *Manager) restart(ctx context.Context, caller Caller, names []string, wait bool, timeout time.Duration) (*wire.Result, error) {
	res, err := m.forEach(ctx, caller, names, "restart", func(ctx context.Context, e *Entry) (string, error) {
		if !e.Managed {
			return "", errorf(ErrInvalid, "%s is an attached process (pid %d), not a managed unit; socketley cannot restart it", e.Name, e.PID)
		}
		if err := m.update(func(r *Registry) error {
			cur, ok := r.edit(e.Name)
			if !ok {
				return errorf(ErrNotFound, "runtime %s was removed meanwhile", e.Name)
			}
			cur.Desired, cur.Started, cur.Backoff = DesiredRunning, true, nil // an operator's restart retries at once
			return nil
		}); err != nil {
			return "", err
		}
		// Stop and wait first: the old and the new process never overlap.
		if err := m.stopUnit(ctx, e.Name); err != nil {
			return "", err
		}
		if err := m.startUnit(ctx, e); err != nil {
			return "", m.explainStartErr(e, err)
		}
		m.log.Info("restarted", "name", e.Name)
		return "restarted " + e.Name, nil
	})
	if err != nil {
		m.poke() // a failed start is the backoff's now; the runtime is unlocked
	}
	if err != nil || !wait {
		return res, err
	}
	return res, m.waitAll(ctx, "restart", res, timeout)
}

func (m *Manager) remove(ctx context.Context, caller Caller, names []string) (*wire.Result, error) {
	return m.forEach(ctx, caller, names, "remove", func(ctx context.Context, e *Entry) (string, error) {
		msg := "removed " + e.Name
		detach := !e.Managed && isDetach(caller, e)
		if detach {
			// Detach: the attached process itself (or a helper it runs) says
			// goodbye. Forget only; never signal the caller (the C++ original did).
			msg = "detached " + e.Name
		} else if err := m.markRemoved(e.Name); err != nil {
			// Intent first: once it is on disk, a crash or a failed write
			// below leaves an entry that reconcile removes, never one it
			// starts again.
			return "", err
		}
		if !detach {
			note, err := m.finishRemove(ctx, caller, e)
			if err != nil {
				return "", err
			}
			msg += note
		} else if err := m.update(func(r *Registry) error { r.del(e.Name); return nil }); err != nil {
			return "", err
		}
		m.log.Info(strings.Fields(msg)[0], "name", e.Name)
		m.emitRemoved(caller, e, detach)
		return msg, nil
	})
}

// markRemoved persists name's removal intent (Desired = removed) before
// anything is stopped.
func (m *Manager) markRemoved(name string) error {
	err := m.update(func(r *Registry) error {
		e, ok := r.edit(name)
		if !ok {
			return errorf(ErrNotFound, "runtime %s was removed meanwhile", name)
		}
		e.Desired, e.Backoff = DesiredRemoved, nil
		return nil
	})
	if err != nil {
		return fmt.Errorf("record the removal of %s (nothing was stopped): %w", name, err)
	}
	return nil
}

// finishRemove stops e's unit (or sends its attached process SIGTERM) and
// drops the entry; e's removal intent is already persisted, so an error
// here leaves an entry that remove NAME or the next reconcile finishes.
// The caller holds e's lock. The attached process is signalled for caller
// only while it is the process that attached, running as the attaching uid
// (see signalAttached); when it is not, the entry is dropped without a
// signal and note says so.
func (m *Manager) finishRemove(ctx context.Context, caller Caller, e *Entry) (note string, err error) {
	const retry = "; the removal is recorded: run socketley remove %s again (the daemon also finishes it at its next start)"
	if e.Managed {
		if err := m.stopListen(ctx, e); err != nil {
			return "", fmt.Errorf("stop socket"+retry+": %w", e.Name, err)
		}
		if err := m.stopUnit(ctx, e.Name); err != nil {
			return "", fmt.Errorf("stop unit"+retry+": %w", e.Name, err)
		}
		m.removeExeLink(e.Name)
	} else if err := terminate(caller, e); errors.Is(err, ErrDenied) {
		note = " (" + err.Error() + ")"
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("signal attached process"+retry+": %w", e.Name, err)
	}
	if err := m.update(func(r *Registry) error { r.del(e.Name); return nil }); err != nil {
		return "", fmt.Errorf("drop the entry"+retry+": %w", e.Name, err)
	}
	return note, nil
}

// attachedStopWait bounds how long stop waits for an attached process to
// exit after SIGTERM (socketley cannot escalate: it did not start it).
const attachedStopWait = 10 * time.Second

// waitExit waits until the attached process of e is gone (on its pidfd, see
// awaitExit) or d passes.
func waitExit(ctx context.Context, e *Entry, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return awaitExit(ctx, e.PID, e.StartTime)
}

// terminate sends SIGTERM to an attached process for caller, only if the
// pid still belongs to the process that attached (pid, start time and uids,
// pinned by a pidfd) and, unless caller is root, runs as the uid that
// attached it (see signalAttached).
func terminate(caller Caller, e *Entry) error {
	return signalAttached(caller, e, syscall.SIGTERM)
}

// list returns runtimes (and, for ls, orphan units) sorted by name; running
// (ps) limits it to those that run or should: a live process, or a managed
// runtime wanted running between a crash and its restart (restarting,
// crash-loop; no pid).
func (m *Manager) list(running bool) []wire.Runtime {
	snap := m.snapshot()
	now := time.Now()
	m.mu.RLock()
	out := make([]wire.Runtime, 0, m.reg.len())
	for e := range m.reg.all() {
		var st *units.Status
		if s, ok := snap[e.Name]; ok {
			st = &s
		}
		r := m.viewLocked(e, st, now)
		if running && r.PID == 0 && !betweenRuns(e, r) {
			continue
		}
		out = append(out, r)
	}
	orphans := m.orphansLocked(snap)
	m.mu.RUnlock()
	if !running {
		out = append(out, orphans...)
		slices.SortFunc(out, func(a, b wire.Runtime) int { return strings.Compare(a.Name, b.Name) })
	}
	return out
}

// betweenRuns reports whether r, e's view, is a managed runtime wanted
// running that has no process only until its restart.
func betweenRuns(e *Entry, r wire.Runtime) bool {
	return e.Managed && e.Desired == DesiredRunning &&
		(r.Status == wire.StatusRestarting || r.Status == wire.StatusCrashLoop)
}

// orphansLocked returns socketley-* units with no entry; m.mu must be held.
func (m *Manager) orphansLocked(snap map[string]units.Status) []wire.Runtime {
	var out []wire.Runtime
	for name, st := range snap {
		if m.reg.has(name) || st.LoadState == "not-found" {
			continue
		}
		r := wire.Runtime{
			Name: name, Unit: st.Unit, Orphan: true, Mode: wire.ModeOrphan, Status: wire.StatusOrphan,
			Reason:      "unit not in the registry; socketley leaves it alone",
			ActiveState: st.ActiveState, SubState: st.SubState, PID: st.MainPID,
			Restarts: st.NRestarts, LastExit: st.LastExit(),
		}
		if r.PID > 0 {
			r.Since = st.ActiveEnter
		}
		if len(st.ExecStart) > 0 {
			r.Path, r.Args = st.ExecStart[0], st.ExecStart[1:]
		}
		out = append(out, r)
	}
	return out
}

func (m *Manager) show(caller Caller, names []string) (*wire.Result, error) {
	snap := m.snapshot()
	matched, err := m.registry().match(names)
	if err != nil {
		// A name that is only an orphan unit can still be shown.
		if errors.Is(err, ErrNotFound) && len(names) == 1 && !isPattern(names[0]) {
			m.mu.RLock()
			orph := m.orphansLocked(map[string]units.Status{names[0]: snap[names[0]]})
			m.mu.RUnlock()
			if _, ok := snap[names[0]]; ok && len(orph) == 1 {
				return &wire.Result{Runtimes: orph}, nil
			}
		}
		return nil, err
	}
	res := &wire.Result{}
	for _, n := range matched {
		res.Runtimes = append(res.Runtimes, m.view(n))
	}
	return res, nil
}

func (m *Manager) stats() *wire.Result {
	rts := m.list(false)
	counts := map[wire.Status]int{}
	for _, r := range rts {
		counts[r.Status]++
	}
	keys := make([]wire.Status, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "runtimes: %d\n", len(rts))
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %d\n", k, counts[k])
	}
	return &wire.Result{Message: b.String()}
}

// view returns the runtime view of one entry.
func (m *Manager) view(name string) wire.Runtime {
	snap := m.snapshot()
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.reg.get(name)
	if !ok {
		return wire.Runtime{Name: name, Unit: units.Name(name), Status: wire.StatusUnknown}
	}
	var st *units.Status
	if s, ok := snap[name]; ok {
		st = &s
	}
	return m.viewLocked(e, st, time.Now())
}

// viewLocked builds the runtime view; m.mu must be held (read).
func (m *Manager) viewLocked(e *Entry, st *units.Status, now time.Time) wire.Runtime {
	var o observed
	if p := m.obs[e.Name]; p != nil {
		o = *p
	}
	if !e.Managed {
		o.exited = !sameProcess(e.PID, e.StartTime)
	}
	status, reason := classify(e, st, &o, now)
	r := wire.Runtime{
		Name: e.Name, Managed: e.Managed, Mode: wire.ModeOf(e.Managed, false), Status: status, Reason: reason, Desired: e.Desired,
		Type: e.Type, Port: e.Port, Path: e.Path, Args: e.Args, Env: e.Env, WorkDir: e.WorkDir, Credentials: e.Credentials, EnvFiles: e.EnvFiles, Harden: e.Harden,
		Restart: e.Restart, RestartSec: e.RestartSec, User: e.User, OwnerUID: e.OwnerUID,
		Created: e.Created, Restarts: e.Restarts, HealthRestarts: e.HealthRestarts, LastExit: e.LastExit,
		RestartMaxDelay: e.RestartMaxDelay, RestartReset: e.RestartReset, MaxRestarts: e.MaxRestarts,
	}
	backoffView(&r, e)
	if s, why, ok := nativeView(&r, e, st, now); ok {
		r.Status, r.Reason = s, why
	}
	r.Listen = e.Listen
	if e.Managed {
		r.Unit = units.Name(e.Name)
		r.StopTimeout = wire.Duration(stopTimeout(e))
		r.Limits = e.Limits.Args()
		r.Properties = e.Properties
		r.ExpectAttach, r.AttachTimeout = e.ExpectAttach, e.AttachTimeout
		if e.HealthFails != nil {
			n := *e.HealthFails
			r.HealthFails = &n
		}
	}
	if e.AttachPID > 0 {
		r.AttachPID, r.AttachedAt = e.AttachPID, e.AttachedAt
	}
	if !e.Managed {
		if !o.exited {
			r.PID = e.PID
			r.Since = r.AttachedAt
		}
		r.Usage = usageView(o.usage, r.PID)
		return r
	}
	if st != nil {
		r.ActiveState, r.SubState = st.ActiveState, st.SubState
		r.Restarts += acceptedRestarts(*st)
		if le := st.LastExit(); le != "" {
			r.LastExit = le
		}
		if st.MainPID > 0 {
			r.PID = st.MainPID
			r.Since = st.ActiveEnter
			if !st.ExecMainStart.IsZero() {
				r.Since = st.ExecMainStart
			}
		}
	}
	r.Usage = usageView(o.usage, r.PID)
	return r
}

// isUp reports whether a unit has (or is about to have) a process.
func isUp(st units.Status) bool {
	switch st.ActiveState {
	case "active", "activating", "reloading":
		return true
	}
	return false
}
