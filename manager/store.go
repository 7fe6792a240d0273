package manager

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/wire"
)

// Schema versions of registry.json. Version 1 is a whole registry with no
// journal (socketley before the journal); version 2 names the journal
// generation that continues it. An older socketley refuses version 2 rather
// than miss the journal's changes.
const (
	storeVersionV1 = 1
	storeVersion   = 2
)

// Names inside the state directory.
const (
	stateFile = "registry.json"
	prevFile  = "registry.json.prev"
	lockFile  = "daemon.lock"
)

// journalName is the file name of journal generation gen.
func journalName(gen uint64) string { return "registry-" + strconv.FormatUint(gen, 10) + ".log" }

// journalGen returns the generation of a journal's file name
// (journalName's inverse).
func journalGen(name string) (uint64, bool) {
	digits, okPrefix := strings.CutPrefix(name, "registry-")
	digits, okSuffix := strings.CutSuffix(digits, ".log")
	if !okPrefix || !okSuffix || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	g, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return g, true
}

// compactMin is the journal length (records) below which the journal is
// never folded into a new snapshot; above it, it is once it holds as many
// records as the registry has entries, so a change costs O(1) amortized.
const compactMin = 1024

// envelope is the on-disk form of a snapshot.
type envelope struct {
	Version int `json:"version"`
	// Journal is the generation of the journal that continues this
	// snapshot (version 2): its records, and those of every later
	// generation, are replayed on top of Entries.
	Journal uint64   `json:"journal,omitempty"`
	Entries []*Entry `json:"entries"`
}

// record is one journal line: the entries one registry change put and the
// names it deleted. A line is "CRC32C-hex JSON\n"; a change is one line, so
// it is applied whole or not at all.
type record struct {
	Put []*Entry `json:"put,omitempty"`
	Del []string `json:"del,omitempty"`
}

// crcTable is the CRC32C table, built at the first use: building it costs
// about half a millisecond, which every CLI command would pay at start.
var crcTable = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// Store persists the registry in the state directory as a snapshot
// (registry.json) plus an append-only journal (registry-GEN.log) of the
// changes since. A change appends one checksummed line and fsyncs the
// journal: its cost does not grow with the registry. Once the journal holds
// as many records as the registry has entries (and at least compactMin), it
// is folded into a new snapshot in the background: a new journal generation
// takes the appends, the snapshot of the registry as of the rotation is
// written atomically (temp file, fsync, rename, fsync directory), the old
// snapshot is kept as registry.json.prev (the last good copy, which with the
// journals after it still holds every change), and journals older than
// the previous snapshot's are deleted.
//
// A journal's last line may be torn by a crash during its write: it was
// never acknowledged, so it is dropped (and cut off). Any other bad line, or
// a bad snapshot, is corruption: Load refuses and leaves every file as it
// is.
//
// A Store is used by one daemon (which holds the state directory's lock); its
// methods are safe for concurrent use, but appends are meant to be serialized
// by the caller (Manager.update), in the order the changes were made.
type Store struct {
	dir string
	// failSave, when set (tests only), is called with the registry about
	// to be written; an error fails the write before anything is written,
	// as a full disk or a crash at that moment would.
	failSave func(next *Registry) error

	mu sync.Mutex
	// gen is the journal generation appends go to; f is that journal (nil
	// until the first append after Load), size its length in bytes and
	// records its number of lines.
	gen     uint64
	f       *os.File
	size    int64
	records int
	// compacting is set while a background compaction runs; done is closed
	// when it ends.
	compacting bool
	done       chan struct{}
	// compactAt, when set (tests only), replaces compactMin.
	compactAt int
}

// Path returns the snapshot file path.
func (s *Store) Path() string { return filepath.Join(s.dir, stateFile) }

// CorruptError is a state file (snapshot or journal) that cannot be read
// as one: Load refuses it and changes nothing.
type CorruptError struct {
	Path, What string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state file %s is corrupt (%s); it was left untouched: repair it or move it aside, then start the daemon again", e.Path, e.What)
}

// loadError is the error of a corrupt snapshot or journal.
func loadError(path, what string) error { return &CorruptError{Path: path, What: what} }

// readSnapshot reads a snapshot file: its entries and its journal generation.
// A missing file is an empty registry of version 0.
func readSnapshot(path string) (_ *Registry, gen uint64, version int, _ error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newRegistry(), 0, 0, nil
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("read state file %s: %w", path, err)
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, 0, 0, loadError(path, err.Error())
	}
	if env.Version != storeVersion && env.Version != storeVersionV1 {
		return nil, 0, 0, fmt.Errorf("state file %s has schema version %d, this socketley understands %d and %d; it was left untouched (use a matching socketley, or move the file aside)", path, env.Version, storeVersionV1, storeVersion)
	}
	reg := newRegistry()
	for i, e := range env.Entries {
		if err := checkEntry(e); err != nil {
			return nil, 0, 0, loadError(path, fmt.Sprintf("entry %d: %v", i, err))
		}
		if reg.has(e.Name) {
			return nil, 0, 0, loadError(path, fmt.Sprintf("runtime %q listed twice", e.Name))
		}
		reg.put(e)
	}
	return reg, env.Journal, env.Version, nil
}

// checkEntry checks an entry read from disk before it is put into reg.
func checkEntry(e *Entry) error {
	if e == nil {
		return errors.New("null entry")
	}
	if err := wire.CheckName(e.Name); err != nil {
		return err
	}
	return nil
}

// journals returns the journal generations present in the directory, sorted.
func (s *Store) journals() ([]uint64, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read state directory %s: %w", s.dir, err)
	}
	var gens []uint64
	for _, de := range des {
		if g, ok := journalGen(de.Name()); ok {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

// replay applies journal gen to reg. last says it is the newest journal,
// whose final line may be torn; it returns the length of the good part and
// the number of records in it.
func replay(path string, reg *Registry, last bool) (good int64, records int, _ error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read journal %s: %w", path, err)
	}
	for off := 0; off < len(b); {
		line := b[off:]
		end := bytes.IndexByte(line, '\n')
		complete := end >= 0
		if complete {
			line = line[:end]
		}
		rec, err := parseRecord(line)
		if err == nil && !complete {
			err = errors.New("no newline at its end")
		}
		if err != nil {
			if last && (!complete || off+end+1 == len(b)) {
				// The final line of the newest journal: a write a crash
				// interrupted, never acknowledged.
				return int64(off), records, nil
			}
			return 0, 0, loadError(path, fmt.Sprintf("record %d at byte %d: %v", records+1, off, err))
		}
		for _, e := range rec.Put {
			if err := checkEntry(e); err != nil {
				return 0, 0, loadError(path, fmt.Sprintf("record %d: %v", records+1, err))
			}
			reg.put(e)
		}
		for _, n := range rec.Del {
			reg.del(n)
		}
		records++
		off += end + 1
	}
	return int64(len(b)), records, nil
}

// parseRecord checks a journal line's checksum and decodes it.
func parseRecord(line []byte) (*record, error) {
	sum, body, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(sum) != 8 {
		return nil, errors.New("no checksum")
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil {
		return nil, errors.New("bad checksum field")
	}
	if crc32.Checksum(body, crcTable()) != uint32(want) {
		return nil, errors.New("checksum mismatch")
	}
	var rec record
	if err := json.Unmarshal(body, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Load reads the registry: the snapshot, then every journal from the
// snapshot's generation on. A missing snapshot with no journal is an empty
// registry; anything corrupt is an error naming the file, and no file is
// changed. On success the store appends to the newest journal (cut to its
// last good line) and journals older than the previous snapshot's are
// deleted.
func (s *Store) Load() (*Registry, error) {
	reg, gen, version, err := s.loadFrom(s.Path())
	if err != nil {
		return nil, err
	}
	reg.commit()
	s.gen = gen
	if version != storeVersion {
		// A new state directory, or one of a socketley before the
		// journal: write a snapshot now, so that the journal always
		// continues one (an older file is kept as registry.json.prev).
		if err := s.writeSnapshot(reg, gen, version == storeVersionV1); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// loadFrom reads the snapshot at path and the journals after it, and sets
// up appends to the newest one.
func (s *Store) loadFrom(path string) (_ *Registry, gen uint64, version int, _ error) {
	reg, snapGen, version, err := readSnapshot(path)
	if err != nil {
		return nil, 0, 0, err
	}
	gens, err := s.journals()
	if err != nil {
		return nil, 0, 0, err
	}
	if version == 0 && len(gens) > 0 {
		return nil, 0, 0, loadError(path, fmt.Sprintf("it is missing, but the journals it continues are there (%s): the snapshot was lost", journalName(gens[0])))
	}
	// The snapshot's journal and every later generation, with no gap.
	gen = snapGen
	var chain []uint64
	for _, g := range gens {
		if g < gen {
			continue
		}
		if want := gen + uint64(len(chain)); g != want {
			return nil, 0, 0, loadError(filepath.Join(s.dir, journalName(want)), fmt.Sprintf("it is missing, but %s, which follows it, is there", journalName(g)))
		}
		chain = append(chain, g)
	}
	type cut struct {
		path string
		size int64
	}
	var tail *cut
	var size int64
	var records int
	for i, g := range chain {
		p := filepath.Join(s.dir, journalName(g))
		good, n, err := replay(p, reg, i == len(chain)-1)
		if err != nil {
			return nil, 0, 0, err
		}
		if i == len(chain)-1 {
			if st, err := os.Stat(p); err == nil && st.Size() != good {
				tail = &cut{p, good}
			}
			size, records = good, n
		}
	}
	if len(chain) > 0 {
		gen = chain[len(chain)-1]
	}
	if tail != nil {
		if err := os.Truncate(tail.path, tail.size); err != nil {
			return nil, 0, 0, fmt.Errorf("cut the torn last record of %s: %w", tail.path, err)
		}
	}
	s.size, s.records = size, records
	s.removeJournalsBelow(min(snapGen, s.prevGen(snapGen)))
	return reg, gen, version, nil
}

// prevGen returns the journal generation the previous snapshot needs (the
// oldest journal worth keeping), or cur if there is no readable one.
func (s *Store) prevGen(cur uint64) uint64 {
	_, g, v, err := readSnapshot(filepath.Join(s.dir, prevFile))
	if err != nil || v == 0 || g > cur {
		return cur
	}
	return g
}

// removeJournalsBelow deletes journals of generations below gen.
func (s *Store) removeJournalsBelow(gen uint64) {
	gens, err := s.journals()
	if err != nil {
		return
	}
	for _, g := range gens {
		if g < gen {
			_ = os.Remove(filepath.Join(s.dir, journalName(g)))
		}
	}
}

// Recover starts from the last good copy: the corrupt snapshot is moved
// aside to registry.json.corrupt-UNIXTIME, registry.json.prev and the
// journals after it are read, and a new snapshot is written. It returns the
// registry and the name the corrupt file was moved to.
func (s *Store) Recover() (*Registry, string, error) {
	prev := filepath.Join(s.dir, prevFile)
	if _, err := os.Stat(prev); err != nil {
		return nil, "", fmt.Errorf("--recover: there is no last good copy %s: %w", prev, err)
	}
	reg, gen, _, err := s.loadFrom(prev)
	if err != nil {
		return nil, "", fmt.Errorf("--recover: the last good copy is not readable either: %w", err)
	}
	aside := ""
	if _, err := os.Stat(s.Path()); err == nil {
		aside = s.Path() + ".corrupt-" + strconv.FormatInt(time.Now().Unix(), 10)
		if err := os.Rename(s.Path(), aside); err != nil {
			return nil, "", fmt.Errorf("--recover: move %s aside: %w", s.Path(), err)
		}
	}
	s.gen = gen
	reg.commit()
	if err := s.writeSnapshot(reg, gen, false); err != nil {
		return nil, "", fmt.Errorf("--recover: %w", err)
	}
	return reg, aside, nil
}

// cleanTemp removes the temp files an interrupted snapshot write left behind
// (.registry.json.tmp*) and returns their names. Call it only with the
// daemon lock held, so no write of another daemon is under way.
func (s *Store) cleanTemp() ([]string, error) {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read state directory %s: %w", s.dir, err)
	}
	var removed []string
	for _, de := range des {
		n := de.Name()
		if !de.Type().IsRegular() || !(strings.HasPrefix(n, "."+stateFile+".tmp") || strings.HasPrefix(n, "."+prevFile+".tmp")) {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("remove %s: %w", n, err)
		}
		removed = append(removed, n)
	}
	return removed, nil
}

// Append persists the changes of next (a registry changed since begin and
// not yet committed) as one journal record, fsynced. On error nothing is
// persisted: a partly written record is cut off again. It returns whether
// the journal is due for compaction (see Compact).
func (s *Store) Append(next *Registry) (compact bool, err error) {
	if s.failSave != nil {
		if err := s.failSave(next); err != nil {
			return false, err
		}
	}
	puts, dels := next.changes()
	if len(puts) == 0 && len(dels) == 0 {
		return false, nil
	}
	body, err := json.Marshal(record{Put: puts, Del: dels})
	if err != nil {
		return false, fmt.Errorf("encode registry change: %w", err)
	}
	line := make([]byte, 0, len(body)+10)
	line = fmt.Appendf(line, "%08x ", crc32.Checksum(body, crcTable()))
	line = append(append(line, body...), '\n')

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.openJournal(); err != nil {
		return false, err
	}
	path := s.f.Name()
	// pwrite at the known good length: a failed write that was cut off
	// again leaves no gap (the file offset would have moved past it).
	if _, err := s.f.WriteAt(line, s.size); err != nil {
		return false, s.undo(err) // an *os.PathError: it names the file
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
		return false, s.undo(&os.PathError{Op: "fsync", Path: path, Err: err})
	}
	s.size += int64(len(line))
	s.records++
	limit := compactMin
	if s.compactAt > 0 {
		limit = s.compactAt
	}
	return !s.compacting && s.records >= limit && s.records >= next.len(), nil
}

// undo cuts a failed append off the journal (and fsyncs the cut), so that
// the next one does not follow a torn line and a crash does not bring the
// record back; if that fails too, the journal is closed (the next append
// reopens and cuts it first) and the error says the change may have been
// saved after all.
func (s *Store) undo(err error) error {
	terr := s.f.Truncate(s.size)
	if terr == nil {
		terr = unix.Fdatasync(int(s.f.Fd()))
	}
	if terr != nil {
		_ = s.f.Close()
		s.f = nil
		return &unsureError{err: err, cut: terr}
	}
	return err
}

// unsureError is a failed append whose partial record could not be cut off
// for sure: after a crash the change may be there.
type unsureError struct{ err, cut error }

func (e *unsureError) Error() string {
	return fmt.Sprintf("%v (and cutting the partial record off failed: %v; the change may be found saved after a daemon restart)", e.err, e.cut)
}
func (e *unsureError) Unwrap() error { return e.err }

// openJournal opens the current journal for appending, cut to its known
// good length; s.mu is held.
func (s *Store) openJournal() error {
	if s.f != nil {
		return nil
	}
	p := filepath.Join(s.dir, journalName(s.gen))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	if err := f.Truncate(s.size); err != nil {
		_ = f.Close()
		return fmt.Errorf("open journal %s: cut to %d bytes: %w", p, s.size, err)
	}
	if s.size == 0 {
		// A new journal: its directory entry must survive a crash before
		// any record in it counts.
		if err := syncDir(s.dir); err != nil {
			_ = f.Close()
			return fmt.Errorf("open journal %s: %w", p, err)
		}
	}
	s.f = f
	return nil
}

// Compact folds the journal into a new snapshot of reg, which must be the
// registry as of the last Append (the caller serializes them). It rotates
// to a new journal generation at once and writes the snapshot in the
// background; Close waits for it. done (if not nil) gets the result; a
// failed compaction loses nothing (the journals stay) and is tried again at
// the next rotation.
func (s *Store) Compact(reg *Registry, done func(error)) {
	s.mu.Lock()
	if s.compacting {
		s.mu.Unlock()
		return
	}
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
	s.gen++
	s.size, s.records = 0, 0
	gen := s.gen
	s.compacting = true
	s.done = make(chan struct{})
	s.mu.Unlock()
	go func() {
		err := s.writeSnapshot(reg, gen, true)
		s.mu.Lock()
		s.compacting = false
		close(s.done)
		s.mu.Unlock()
		if done != nil {
			done(err)
		}
	}()
}

// writeSnapshot writes reg as the snapshot continued by journal gen. With
// keepPrev the current snapshot becomes registry.json.prev first; then the
// journals the previous snapshot no longer needs are deleted.
func (s *Store) writeSnapshot(reg *Registry, gen uint64, keepPrev bool) error {
	env := envelope{Version: storeVersion, Journal: gen, Entries: reg.sorted()}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return fmt.Errorf("encode registry: %w", err)
	}
	prev := filepath.Join(s.dir, prevFile)
	oldGen := gen
	if keepPrev {
		if _, g, v, err := readSnapshot(s.Path()); err == nil && v != 0 {
			oldGen = g
			if err := linkAtomic(s.Path(), prev); err != nil {
				return err
			}
		} else {
			// The snapshot is unreadable: the last good copy stays as it
			// is, with the journals it needs.
			oldGen = s.prevGen(gen)
		}
	}
	if err := writeFileAtomic(s.Path(), append(b, '\n'), 0o600); err != nil {
		return err
	}
	if !keepPrev {
		// A snapshot written from scratch (a new directory, --recover,
		// Save) is its own last good copy: the old one's journals go.
		if err := linkAtomic(s.Path(), prev); err != nil {
			return err
		}
		if err := syncDir(s.dir); err != nil {
			return err
		}
	}
	// registry.json.prev (generation oldGen) and registry.json need the
	// journals from oldGen on.
	s.removeJournalsBelow(oldGen)
	return nil
}

// Save replaces the whole persisted registry with reg (a new snapshot and
// an empty journal). The daemon persists through Append; Save is for tools
// and tests.
func (s *Store) Save(reg *Registry) error {
	if s.failSave != nil {
		if err := s.failSave(reg); err != nil {
			return err
		}
	}
	s.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
	gens, err := s.journals()
	if err != nil {
		return err
	}
	gen := s.gen + 1
	if len(gens) > 0 {
		gen = max(gen, gens[len(gens)-1]+1)
	}
	if err := s.writeSnapshot(reg, gen, false); err != nil {
		return err
	}
	s.gen, s.size, s.records = gen, 0, 0
	return nil
}

// Wait waits for a background compaction to finish.
func (s *Store) Wait() {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Close waits for a background compaction and closes the journal.
func (s *Store) Close() error {
	s.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// linkAtomic makes dst a hard link to src, replacing dst atomically.
func linkAtomic(src, dst string) error {
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp"+strconv.Itoa(os.Getpid()))
	_ = os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		return fmt.Errorf("keep %s as %s: %w", src, dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("keep %s as %s: %w", src, dst, err)
	}
	return nil
}

// syncDir fsyncs a directory, so that renames and new files in it survive a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
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
	w := bufio.NewWriter(f)
	if _, err = w.Write(data); err == nil {
		err = w.Flush()
	}
	if err != nil {
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
	if err = syncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
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
