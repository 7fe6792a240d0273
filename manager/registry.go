package manager

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// Error classes. Every error a handler returns wraps one of them (or none, for
// internal failures); replyCode maps them onto the wire's exit codes.
var (
	// ErrInvalid is bad input: a malformed name, path, flag or request.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound is an unknown runtime name or a pattern matching nothing.
	ErrNotFound = errors.New("not found")
	// ErrExists is a duplicate runtime name.
	ErrExists = errors.New("already exists")
	// ErrDenied is a caller without the right to do what it asked.
	ErrDenied = errors.New("permission denied")
	// ErrFailed is a runtime that did not reach "running" (start --wait).
	ErrFailed = errors.New("runtime failed")
	// ErrUnavailable is systemd or D-Bus being unreachable.
	ErrUnavailable = errors.New("systemd unavailable")
)

// classError is an error of one class whose message does not repeat the
// class name: errors.Is(err, class) holds, err.Error() is just msg.
type classError struct {
	class error
	msg   string
}

func (e *classError) Error() string        { return e.msg }
func (e *classError) Is(target error) bool { return target == e.class }

// errorf returns an error of class with a formatted message.
func errorf(class error, format string, args ...any) error {
	return &classError{class: class, msg: fmt.Sprintf(format, args...)}
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

// Restart policies accepted by add --restart.
var restartPolicies = []string{"on-failure", "always", "no"}

// Entry is one registered runtime: what the user asked for. It is the unit of
// persistence; observed facts live in [observed].
type Entry struct {
	Name       string        `json:"name"`
	Managed    bool          `json:"managed"` // a unit socketley starts; false = attached process
	Path       string        `json:"path,omitempty"`
	Args       []string      `json:"args,omitempty"`
	Env        []string      `json:"env,omitempty"`
	WorkDir    string        `json:"workdir,omitempty"`
	Restart    string        `json:"restart,omitempty"`
	RestartSec wire.Duration `json:"restart_sec,omitempty"`
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
	// Backoff is the crash backoff state (nil = none): see restart.go.
	Backoff *Backoff `json:"backoff,omitempty"`
}

// clone returns a deep copy of e.
func (e *Entry) clone() *Entry {
	c := *e
	c.Args = slices.Clone(e.Args)
	c.Env = slices.Clone(e.Env)
	c.Credentials = slices.Clone(e.Credentials)
	c.UIDs = slices.Clone(e.UIDs)
	if e.HealthFails != nil {
		v := *e.HealthFails
		c.HealthFails = &v
	}
	if e.Backoff != nil {
		b := *e.Backoff
		c.Backoff = &b
	}
	return &c
}

// ValidateName checks a runtime name (wire.CheckName); the error wraps ErrInvalid.
func ValidateName(name string) error {
	if err := wire.CheckName(name); err != nil {
		return errorf(ErrInvalid, "%v", err)
	}
	return nil
}

// isPattern reports whether s is a glob pattern rather than a plain name.
func isPattern(s string) bool { return strings.ContainsAny(s, "*?[") }

// Registry is the set of entries, keyed by name. Once published (made
// Manager.reg by update) it is never changed, so it may be read
// concurrently without a lock; before that it is not safe for concurrent use.
type Registry struct {
	entries map[string]*Entry
	// order caches the sorted names; set by index, valid while it has
	// len(entries) names (a Registry is not changed after it is published).
	order []string
	// onMatch, when set (tests only), is called by match once per pattern.
	onMatch func()
}

func newRegistry() *Registry { return &Registry{entries: map[string]*Entry{}} }

// clone returns a deep copy.
func (r *Registry) clone() *Registry {
	c := &Registry{entries: make(map[string]*Entry, len(r.entries))}
	for k, e := range r.entries {
		c.entries[k] = e.clone()
	}
	return c
}

// index computes the sorted order; call it before publishing r.
func (r *Registry) index() {
	r.order = make([]string, 0, len(r.entries))
	for n := range r.entries {
		r.order = append(r.order, n)
	}
	sort.Strings(r.order)
}

// sorted returns the entries sorted by name (shared pointers: callers copy).
func (r *Registry) sorted() []*Entry {
	out := make([]*Entry, 0, len(r.entries))
	if len(r.order) == len(r.entries) {
		for _, n := range r.order {
			if e, ok := r.entries[n]; ok {
				out = append(out, e)
			}
		}
		if len(out) == len(r.entries) {
			return out
		}
		out = out[:0]
	}
	for _, e := range r.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
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
			if _, ok := r.entries[n]; !ok {
				if err := ValidateName(n); err != nil {
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
// its literal prefix (the part before the first *, ?, [ or \), found by
// binary search in the sorted order, so that 'web-*' does not scan every
// runtime. Without a sorted order it returns every name.
func (r *Registry) candidates(pattern string) []string {
	if len(r.order) != len(r.entries) {
		all := make([]string, 0, len(r.entries))
		for n := range r.entries {
			all = append(all, n)
		}
		return all
	}
	prefix := pattern
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		prefix = pattern[:i]
	}
	lo, _ := slices.BinarySearch(r.order, prefix)
	hi := lo
	for hi < len(r.order) && strings.HasPrefix(r.order[hi], prefix) {
		hi++
	}
	return r.order[lo:hi]
}
