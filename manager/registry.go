package manager

import (
	"iter"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	iradix "github.com/hashicorp/go-immutable-radix/v2"

	"github.com/socketley/socketley/internal/wire"
)

// Error classes. Every error a handler returns wraps one of them (or none, for
// internal failures); replyCode maps them onto the wire's exit codes.
// They are the wire's class errors: the class travels in the reply.
var (
	// ErrInvalid is bad input: a malformed name, path, flag or request.
	ErrInvalid = wire.ErrInvalid
	// ErrNotFound is an unknown runtime name or a pattern matching nothing.
	ErrNotFound = wire.ErrNotFound
	// ErrExists is a duplicate runtime name.
	ErrExists = wire.ErrExists
	// ErrDenied is a caller without the right to do what it asked.
	ErrDenied = wire.ErrDenied
	// ErrLimit is a limit reached (runtimes per user).
	ErrLimit = wire.ErrLimit
	// ErrBusy is a runtime in the middle of another operation.
	ErrBusy = wire.ErrBusy
	// ErrFailed is a runtime that did not reach "running" (start --wait).
	ErrFailed = wire.ErrFailed
	// ErrUnavailable is systemd or D-Bus being unreachable.
	ErrUnavailable = wire.ErrUnavailable
)

// errorf returns an error of class with a formatted message (wire.Errorf).
func errorf(class error, format string, args ...any) error {
	return wire.Errorf(class, format, args...)
}

// msgError replaces err's message and keeps err for errors.Is.
type msgError struct {
	err error
	msg string
}

func (e *msgError) Error() string { return e.msg }
func (e *msgError) Unwrap() error { return e.err }

// Desired states of an entry.
const (
	DesiredRunning = "running"
	DesiredStopped = "stopped"
	// DesiredRemoved marks an entry whose removal was asked for and
	// persisted but not finished (its unit may still be up, or the final
	// write failed). Nothing restarts it; remove NAME again, or the next
	// reconcile, stops its unit and drops it.
	DesiredRemoved = "removed"
)

// Entry is one registered runtime: what the user asked for. It is the unit of
// persistence; observed facts live in [observed].
type Entry struct {
	Name       string             `json:"name"`
	Managed    bool               `json:"managed"` // a unit socketley starts; false = attached process
	Path       string             `json:"path,omitempty"`
	Args       []string           `json:"args,omitempty"`
	Env        []string           `json:"env,omitempty"`
	WorkDir    string             `json:"workdir,omitempty"`
	Restart    wire.RestartPolicy `json:"restart,omitempty"`
	RestartSec wire.Duration      `json:"restart_sec,omitempty"`
	// RestartMaxDelay caps the backoff delay (0 = DefaultRestartMaxDelay),
	// RestartReset is how long a runtime must run before its backoff starts
	// over (0 = DefaultRestartReset), and MaxRestarts is how many consecutive
	// failed runs are restarted before socketley gives up (0 = never).
	RestartMaxDelay wire.Duration `json:"restart_max_delay,omitempty"`
	RestartReset    wire.Duration `json:"restart_reset,omitempty"`
	MaxRestarts     int           `json:"max_restarts,omitempty"`
	User            string        `json:"user,omitempty"` // system mode: User= of the unit
	OwnerUID        int           `json:"owner_uid"`
	Desired         string        `json:"desired"`
	// StopTimeout is the unit's TimeoutStopSec=: how long a stop waits
	// after SIGTERM before SIGKILL. add always sets it; 0 marks an entry
	// added before stop timeouts existed (its next unit gets
	// DefaultStopTimeout; its current one may have systemd's 90 s).
	StopTimeout wire.Duration `json:"stop_timeout,omitempty"`
	// Credentials are the unit's LoadCredential= (add --credential),
	// loaded again at every start: after a daemon restart and a reconcile
	// too.
	Credentials []wire.Credential `json:"credentials,omitempty"`
	// EnvFiles are the unit's EnvironmentFile= (add --env-file), read by
	// systemd at every start of every unit made for the entry.
	EnvFiles []string `json:"env_files,omitempty"`
	// Harden gives every unit made for the entry the sandboxing preset
	// (add --harden, units.hardenProperties, docs/harden.md).
	Harden bool `json:"harden,omitempty"`
	// Limits are the unit's resource limits (add --memory-max …, set),
	// given to every unit made for the entry: at start, after a reboot and
	// at reconcile. Entries written before limits existed have none.
	Limits wire.Limits `json:"limits,omitzero"`
	// Properties are the -p/--property settings (canonical KEY=VALUE of
	// wire.PropertyRules, sorted), given to every unit made for the entry.
	Properties []string `json:"properties,omitempty"`
	// Started is set once the runtime has been started, so that a never-started
	// entry shows "created" rather than "stopped".
	Started bool      `json:"started,omitempty"`
	Created time.Time `json:"created"`

	// Attach expectations and the last attach report (survive daemon restarts).
	ExpectAttach  bool          `json:"expect_attach,omitempty"`
	AttachTimeout wire.Duration `json:"attach_timeout,omitempty"`
	HealthFails   *int          `json:"health_fails,omitempty"`
	Type          string        `json:"type,omitempty"`
	Port          int           `json:"port,omitempty"`
	// AttachPID is the pid of the last attach and AttachedAt its time. A managed
	// runtime counts as attached while AttachPID is its unit's MainPID, which
	// also holds across a daemon restart.
	AttachPID  int       `json:"attach_pid,omitempty"`
	AttachedAt time.Time `json:"attached_at,omitempty"`

	// Unmanaged entries are bound to one process: pid plus its start time
	// (clock ticks since boot, /proc/PID/stat field 22) so a reused pid is
	// never mistaken for it.
	PID       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"start_time,omitempty"`
	// UIDs are the process's real, effective, saved and filesystem uids at
	// attach: it is signalled only while it still runs as them (none in
	// entries attached by an older daemon).
	UIDs []int `json:"uids,omitempty"`

	// Restarts counts the automatic restarts (systemd's, the backoff's and
	// health restarts) of units this entry had before its current one; the
	// current unit's NRestarts is added when shown. LastExit is how the last
	// main process ended, in units.Status.LastExit's words. Both survive
	// daemon restarts.
	Restarts int    `json:"restarts,omitempty"`
	LastExit string `json:"last_exit,omitempty"`
	// HealthRestarts counts the health check's restarts (heal), which
	// Restarts includes too.
	HealthRestarts int `json:"health_restarts,omitempty"`
	// Backoff is the crash backoff state (nil = none): see restart.go.
	Backoff *Backoff `json:"backoff,omitempty"`
	// Exit is the last exit the daemon saw while the runtime should run
	// (socketley why), and History its last automatic restarts (at most
	// wire.MaxRestartHistory, oldest first); see events.go.
	Exit    *wire.Exit           `json:"exit,omitempty"`
	History []wire.RestartRecord `json:"history,omitempty"`

	// Listen are the addresses of the runtime's socket unit (add --listen,
	// see listen.go), in systemd's ListenStream= form.
	Listen []string `json:"listen,omitempty"`
	// PrevPath is the executable known to work while an upgrade (or its
	// switch back) is under way, "" otherwise (see upgrade.go): a daemon
	// that restarts meanwhile finds one consistent Path and switches back
	// to PrevPath.
	PrevPath string `json:"prev_path,omitempty"`
	// Prev is the entry as it was before a replace, while the replace is
	// under way (see replace.go): a daemon that restarts meanwhile finds
	// it and restores it (finishReplace).
	Prev *Entry `json:"prev,omitempty"`
}

// clone returns a deep copy of e.
func (e *Entry) clone() *Entry {
	c := *e
	c.Args = slices.Clone(e.Args)
	c.Env = slices.Clone(e.Env)
	c.Credentials = slices.Clone(e.Credentials)
	c.EnvFiles = slices.Clone(e.EnvFiles)
	c.Properties = slices.Clone(e.Properties)
	c.Listen = slices.Clone(e.Listen)
	c.UIDs = slices.Clone(e.UIDs)
	if e.HealthFails != nil {
		v := *e.HealthFails
		c.HealthFails = &v
	}
	if e.Prev != nil {
		c.Prev = e.Prev.clone()
	}
	if e.Backoff != nil {
		b := *e.Backoff
		c.Backoff = &b
	}
	if e.Exit != nil {
		x := *e.Exit
		c.Exit = &x
	}
	c.History = slices.Clone(e.History)
	return &c
}

// isPattern reports whether s is a glob pattern rather than a plain name.
func isPattern(s string) bool { return strings.ContainsAny(s, "*?[") }

// Registry is the set of entries, keyed by name, held in an immutable radix
// tree (hashicorp/go-immutable-radix): a changed copy shares every entry and
// node it does not change, so a change costs O(length of the name), not
// O(runtimes), and walks come out sorted by name.
//
// A published registry (Manager.reg) is never changed, so it may be read
// concurrently without a lock. A copy being changed (begin, then get, edit,
// put, del, then commit) is not safe for concurrent use; it records which
// names changed, for the journal. Entries reached through get are shared with
// the published registry and must not be changed: edit returns a private copy.
type Registry struct {
	tree *iradix.Tree[*Entry]
	// txn is non-nil while the registry is being changed.
	txn *iradix.Txn[*Entry]
	n   int
	// owners counts the entries of each OwnerUID (per-user limits); a
	// copy being changed has its own map.
	owners map[int]int
	// dirty holds the names put or deleted since begin.
	dirty map[string]bool
	// onMatch, when set (tests only), is called by match once per pattern.
	onMatch func()
}

func newRegistry() *Registry { return &Registry{tree: iradix.New[*Entry](), owners: map[int]int{}} }

// begin returns a copy of r to change; r is not affected. It costs O(1)
// in the number of entries (O(users) for the per-user counts).
func (r *Registry) begin() *Registry {
	return &Registry{tree: r.tree, n: r.n, owners: maps.Clone(r.owners)}
}

// owned returns the number of entries uid owns.
func (r *Registry) owned(uid int) int { return r.owners[uid] }

// own moves one entry's count from old (if there was an old entry) to e's owner.
func (r *Registry) own(old, e *Entry) {
	if r.owners == nil {
		r.owners = map[int]int{}
	}
	if old != nil {
		if r.owners[old.OwnerUID]--; r.owners[old.OwnerUID] <= 0 {
			delete(r.owners, old.OwnerUID)
		}
	}
	if e != nil {
		r.owners[e.OwnerUID]++
	}
}

// commit ends a change: r becomes a registry that is never changed again
// (until the next begin on a copy). Call it before publishing r.
func (r *Registry) commit() {
	if r.txn != nil {
		r.tree = r.txn.CommitOnly()
		r.txn = nil
	}
}

// write returns the transaction, starting it on first use.
func (r *Registry) write() *iradix.Txn[*Entry] {
	if r.txn == nil {
		r.txn = r.tree.Txn()
	}
	return r.txn
}

// root is the tree as it is now, changes included.
func (r *Registry) root() *iradix.Node[*Entry] {
	if r.txn != nil {
		return r.txn.Root()
	}
	return r.tree.Root()
}

// len returns the number of entries.
func (r *Registry) len() int { return r.n }

// get returns the named entry, shared: the caller must not change it.
func (r *Registry) get(name string) (*Entry, bool) {
	if r.txn != nil {
		return r.txn.Get([]byte(name))
	}
	return r.tree.Get([]byte(name))
}

// has reports whether name is registered.
func (r *Registry) has(name string) bool {
	_, ok := r.get(name)
	return ok
}

// put adds or replaces e (keyed by e.Name). r owns e from now on.
func (r *Registry) put(e *Entry) {
	old, updated := r.write().Insert([]byte(e.Name), e)
	if !updated {
		r.n++
		old = nil
	}
	r.own(old, e)
	r.markDirty(e.Name)
}

// edit returns a private copy of the named entry, put in its place, for the
// caller to change.
func (r *Registry) edit(name string) (*Entry, bool) {
	e, ok := r.get(name)
	if !ok {
		return nil, false
	}
	c := e.clone()
	r.put(c)
	return c, true
}

// del removes the named entry and reports whether it was there.
func (r *Registry) del(name string) bool {
	old, ok := r.write().Delete([]byte(name))
	if !ok {
		return false
	}
	r.n--
	r.own(old, nil)
	r.markDirty(name)
	return true
}

func (r *Registry) markDirty(name string) {
	if r.dirty == nil {
		r.dirty = map[string]bool{}
	}
	r.dirty[name] = true
}

// changes returns what changed since begin: the entries put (in name order)
// and the names deleted.
func (r *Registry) changes() (puts []*Entry, dels []string) {
	names := make([]string, 0, len(r.dirty))
	for n := range r.dirty {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if e, ok := r.get(n); ok {
			puts = append(puts, e)
		} else {
			dels = append(dels, n)
		}
	}
	return puts, dels
}

// all yields every entry in name order, without copying the registry (the
// scans on every watch change use it). The entries are shared: the caller
// must not change them.
func (r *Registry) all() iter.Seq[*Entry] {
	return func(yield func(*Entry) bool) {
		r.root().Walk(func(_ []byte, e *Entry) bool { return !yield(e) })
	}
}

// sorted returns the entries sorted by name (shared pointers: callers copy).
func (r *Registry) sorted() []*Entry {
	return slices.AppendSeq(make([]*Entry, 0, r.n), r.all())
}

// match resolves names and glob patterns to entry names, sorted and without
// duplicates. A name that is not registered, or a pattern that matches
// nothing, is ErrNotFound; a malformed pattern is ErrInvalid.
func (r *Registry) match(names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, errorf(ErrInvalid, "no runtime name given")
	}
	seen := map[string]bool{}
	donePatterns := map[string]bool{}
	var out []string
	for _, n := range names {
		if !isPattern(n) {
			if !r.has(n) {
				if err := wire.CheckName(n); err != nil {
					return nil, err
				}
				return nil, errorf(ErrNotFound, "unknown runtime %q (see `socketley ls`)", n)
			}
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
			continue
		}
		if r.onMatch != nil {
			r.onMatch()
		}
		if _, err := path.Match(n, ""); err != nil {
			return nil, errorf(ErrInvalid, "bad pattern %q: %v", n, err)
		}
		if donePatterns[n] {
			continue
		}
		donePatterns[n] = true
		hit := false
		for _, name := range r.candidates(n) {
			if ok, _ := path.Match(n, name); ok {
				hit = true
				if !seen[name] {
					seen[name] = true
					out = append(out, name)
				}
			}
		}
		if !hit {
			return nil, errorf(ErrNotFound, "no runtime matches %q (see `socketley ls`)", n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// candidates returns the names a pattern can match: those that start with
// its literal prefix (the part before the first *, ?, [ or \), found in the
// radix tree, so that 'web-*' does not scan every runtime.
func (r *Registry) candidates(pattern string) []string {
	prefix := pattern
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		prefix = pattern[:i]
	}
	var out []string
	r.root().WalkPrefix([]byte(prefix), func(k []byte, _ *Entry) bool {
		out = append(out, string(k))
		return false
	})
	return out
}
