package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// storeVersion is the schema version of registry.json.
const storeVersion = 1

// stateFile and lockFile are the names inside the state directory.
const (
	stateFile = "registry.json"
	lockFile  = "daemon.lock"
)

// envelope is the on-disk form of the registry.
type envelope struct {
	Version int      `json:"version"`
	Entries []*Entry `json:"entries"`
}

// Store persists the registry as one JSON file with a schema version. Writes
// are atomic: a temp file in the same directory is written, fsynced, renamed
// over the old file, and the directory is fsynced.
type Store struct {
	dir string
	// failSave, when set (tests only), is called with the registry about
	// to be written; an error fails Save before anything is written, as a
	// full disk or a crash at that moment would.
	failSave func(next *Registry) error
}

// Path returns the registry file path.
func (s *Store) Path() string { return filepath.Join(s.dir, stateFile) }

// Load reads the registry. A missing file is an empty registry; a corrupt
// file or an unknown version is an error naming the path, and the file is
// left untouched.
func (s *Store) Load() (*Registry, error) {
	p := s.Path()
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return newRegistry(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file %s: %w", p, err)
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt (%v); it was left untouched: repair it or move it aside, then start the daemon again", p, err)
	}
	if env.Version != storeVersion {
		return nil, fmt.Errorf("state file %s has schema version %d, this socketley understands %d; it was left untouched (use a matching socketley, or move the file aside)", p, env.Version, storeVersion)
	}
	reg := newRegistry()
	for i, e := range env.Entries {
		if e == nil {
			return nil, fmt.Errorf("state file %s is corrupt (entry %d is null); it was left untouched", p, i)
		}
		if err := ValidateName(e.Name); err != nil {
			return nil, fmt.Errorf("state file %s is corrupt (entry %d: %v); it was left untouched", p, i, err)
		}
		if _, dup := reg.entries[e.Name]; dup {
			return nil, fmt.Errorf("state file %s is corrupt (runtime %q listed twice); it was left untouched", p, e.Name)
		}
		reg.entries[e.Name] = e
	}
	return reg, nil
}

// cleanTemp removes the temp files an interrupted Save left behind
// (.registry.json.tmp*) and returns their names. Call it only with the
// daemon lock held, so no Save of another daemon is under way.
func (s *Store) cleanTemp() ([]string, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read state directory %s: %w", s.dir, err)
	}
	var removed []string
	prefix := "." + stateFile + ".tmp"
	for _, de := range des {
		if !de.Type().IsRegular() || !strings.HasPrefix(de.Name(), prefix) {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, de.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("remove %s: %w", de.Name(), err)
		}
		removed = append(removed, de.Name())
	}
	return removed, nil
}

// Save writes reg atomically.
func (s *Store) Save(reg *Registry) error {
	if s.failSave != nil {
		if err := s.failSave(reg); err != nil {
			return err
		}
	}
	env := envelope{Version: storeVersion, Entries: reg.sorted()}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return fmt.Errorf("encode registry: %w", err)
	}
	return writeFileAtomic(s.Path(), append(b, '\n'), 0o600)
}

// writeFileAtomic replaces path with data: temp file, fsync, rename, fsync dir.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: open dir: %w", path, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync dir: %w", path, err)
	}
	return nil
}

// lockDir takes an exclusive lock on dir so that two daemons never share one
// state directory. The returned function releases it. The lock file holds the
// owner's pid, for the error message of the next daemon.
func lockDir(dir string) (func(), error) {
	p := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(p)
		_ = f.Close()
		owner := strings.TrimSpace(string(b))
		if errors.Is(err, unix.EWOULDBLOCK) {
			if owner != "" {
				return nil, fmt.Errorf("another socketley daemon (pid %s) is using the state directory %s; stop it first", owner, dir)
			}
			return nil, fmt.Errorf("another socketley daemon is using the state directory %s; stop it first", dir)
		}
		return nil, fmt.Errorf("lock state directory %s: %w", dir, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
	}, nil
}
