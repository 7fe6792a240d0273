package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/testenv"
)

// change applies fn to a copy of reg, appends it to s and returns the
// committed copy, as Manager.update does.
func change(t *testing.T, s *Store, reg *Registry, fn func(r *Registry)) (*Registry, bool) {
	t.Helper()
	next := reg.begin()
	fn(next)
	compact, err := s.Append(next)
	if err != nil {
		t.Fatal(err)
	}
	next.commit()
	return next, compact
}

// names returns the entry names of reg, sorted.
func names(reg *Registry) []string {
	var out []string
	for e := range reg.all() {
		out = append(out, e.Name)
	}
	return out
}

// reload reads dir with a new Store, as the next daemon would.
func reload(t *testing.T, dir string) *Registry {
	t.Helper()
	s := &Store{dir: dir}
	reg, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// TestJournalRoundTrip: every change is one journal line, replayed in order
// by the next Load; an update that changes nothing writes nothing.
func TestJournalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := &Store{dir: dir}
	reg := loadForTest(t, s)
	reg, _ = change(t, s, reg, func(r *Registry) {
		r.put(&Entry{Name: "a", Args: []string{"x y"}, OwnerUID: 7})
		r.put(&Entry{Name: "b"})
	})
	reg, _ = change(t, s, reg, func(r *Registry) { e, _ := r.edit("a"); e.Desired = DesiredRunning })
	reg, _ = change(t, s, reg, func(r *Registry) { r.del("b") })
	before, err := os.ReadFile(filepath.Join(dir, journalName(0)))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(before, []byte("\n")); n != 3 {
		t.Fatalf("journal has %d lines, want 3 (one per change):\n%s", n, before)
	}
	change(t, s, reg, func(r *Registry) { _, _ = r.get("a") }) // no change
	after, _ := os.ReadFile(filepath.Join(dir, journalName(0)))
	if !bytes.Equal(before, after) {
		t.Fatal("an update that changed nothing wrote to the journal")
	}
	got := reload(t, dir)
	if !slices.Equal(names(got), []string{"a"}) || got.at("a").Desired != DesiredRunning || got.at("a").Args[0] != "x y" {
		t.Fatalf("replayed %v %+v", names(got), got.at("a"))
	}
	if got.owned(7) != 1 || got.owned(0) != 0 {
		t.Fatalf("owner counts after replay: uid 7 %d, uid 0 %d", got.owned(7), got.owned(0))
	}
}

// TestJournalTornTail: the last line of the newest journal, cut or garbled
// by a crash during its write, was never acknowledged: Load drops it, cuts
// it off, and the next append follows the last good record.
func TestJournalTornTail(t *testing.T) {
	tails := []struct {
		name string
		tear func(b []byte) []byte
	}{
		{"cut mid-line", func(b []byte) []byte { return b[:len(b)-7] }},
		{"zeros appended", func(b []byte) []byte { return append(b, make([]byte, 512)...) }},
		{"garbage line", func(b []byte) []byte { return append(b, "deadbeef {\"put\":[{\"name\":\"x\"}]}\n"...) }},
	}
	for _, tt := range tails {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := &Store{dir: dir}
			reg := loadForTest(t, s)
			for _, n := range []string{"a", "b", "c"} {
				reg, _ = change(t, s, reg, func(r *Registry) { r.put(&Entry{Name: n}) })
			}
			_ = s.Close()
			p := filepath.Join(dir, journalName(0))
			b, _ := os.ReadFile(p)
			torn := tt.tear(slices.Clone(b))
			if err := os.WriteFile(p, torn, 0o600); err != nil {
				t.Fatal(err)
			}
			want := []string{"a", "b", "c"}
			if len(torn) < len(b) {
				want = want[:2] // the cut line is c's
			}
			s2 := &Store{dir: dir}
			got := loadForTest(t, s2)
			if !slices.Equal(names(got), want) {
				t.Fatalf("after a torn tail: %v, want %v", names(got), want)
			}
			change(t, s2, got, func(r *Registry) { r.put(&Entry{Name: "d"}) })
			if again := reload(t, dir); !slices.Equal(names(again), append(want, "d")) {
				t.Fatalf("after appending past a torn tail: %v", names(again))
			}
		})
	}
}

// TestJournalCorruptRecordRefuses: a bad record followed by good ones is
// not a torn write: Load refuses, names the file, and changes nothing.
func TestJournalCorruptRecordRefuses(t *testing.T) {
	dir := t.TempDir()
	s := &Store{dir: dir}
	reg := loadForTest(t, s)
	for _, n := range []string{"a", "b", "c"} {
		reg, _ = change(t, s, reg, func(r *Registry) { r.put(&Entry{Name: n}) })
	}
	_ = s.Close()
	p := filepath.Join(dir, journalName(0))
	b, _ := os.ReadFile(p)
	i := bytes.Index(b, []byte(`"a"`))
	b[i+1] = 'z' // record 1 no longer matches its checksum
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := (&Store{dir: dir}).Load()
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "checksum") || !strings.Contains(err.Error(), "untouched") {
		t.Fatalf("got %v, want a checksum error naming %s", err, p)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(after, b) {
		t.Fatal("the corrupt journal was modified")
	}
}

// TestCompaction: once the journal is long enough it is folded into a new
// snapshot in the background; the old snapshot becomes registry.json.prev,
// journals nothing needs are deleted, and both the snapshot and the last
// good copy (with --recover) give the whole registry.
func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	s := &Store{dir: dir, compactAt: 5}
	reg := loadForTest(t, s)
	var done []error
	compactions := 0
	for i := range 23 {
		var compact bool
		reg, compact = change(t, s, reg, func(r *Registry) {
			r.put(&Entry{Name: fmt.Sprintf("r%02d", i%4), Restarts: i})
		})
		if compact {
			compactions++
			ch := make(chan error, 1)
			s.Compact(reg, func(err error) { ch <- err })
			done = append(done, <-ch)
		}
	}
	for _, err := range done {
		if err != nil {
			t.Fatal(err)
		}
	}
	if compactions < 3 {
		t.Fatalf("%d compactions in 23 changes with compactAt 5", compactions)
	}
	files := dirNames(t, dir)
	var journals []string
	for _, f := range files {
		if isJournal(f) {
			journals = append(journals, f)
		}
	}
	if !slices.Contains(files, prevFile) || len(journals) != 2 {
		t.Fatalf("files after %d compactions: %v (want registry.json.prev and two journals: the previous snapshot's and the current one)", compactions, files)
	}
	want := names(reg)
	if got := reload(t, dir); !slices.Equal(names(got), want) || got.at("r02").Restarts != reg.at("r02").Restarts {
		t.Fatalf("after compaction: %v, want %v", names(got), want)
	}
	_ = s.Close()

	// The snapshot is lost to corruption: refused, then recovered from the
	// last good copy and the journals after it, with nothing lost.
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Store{dir: dir}).Load(); err == nil {
		t.Fatal("a corrupt snapshot was loaded")
	}
	rs := &Store{dir: dir}
	got, aside, err := rs.Recover()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if b, _ := os.ReadFile(aside); string(b) != "{garbage" {
		t.Fatalf("the corrupt file was not kept as %s: %q", aside, b)
	}
	if !slices.Equal(names(got), want) || got.at("r02").Restarts != reg.at("r02").Restarts {
		t.Fatalf("recovered %v (r02 %+v), want %v (r02 %+v)", names(got), got.at("r02"), want, reg.at("r02"))
	}
	if again := reload(t, dir); !slices.Equal(names(again), want) {
		t.Fatalf("after --recover the state loads as %v", names(again))
	}
}

// TestMigrateV1: a registry.json written before the journal is read, and
// rewritten as version 2 at once (the old file kept as registry.json.prev),
// so an older socketley refuses the directory instead of missing changes.
func TestMigrateV1(t *testing.T) {
	dir := t.TempDir()
	v1 := []byte(`{"version":1,"entries":[{"name":"old","managed":true,"owner_uid":5,"desired":"running","created":"2026-01-01T00:00:00Z"}]}` + "\n")
	if err := os.WriteFile(filepath.Join(dir, stateFile), v1, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Store{dir: dir}
	reg := loadForTest(t, s)
	if !slices.Equal(names(reg), []string{"old"}) || reg.owned(5) != 1 {
		t.Fatalf("v1 loaded as %v", names(reg))
	}
	if b, _ := os.ReadFile(filepath.Join(dir, prevFile)); !bytes.Equal(b, v1) {
		t.Fatalf("the v1 file was not kept as %s", prevFile)
	}
	b, _ := os.ReadFile(filepath.Join(dir, stateFile))
	if !bytes.Contains(b, []byte(`"version": 2`)) {
		t.Fatalf("registry.json not rewritten as version 2:\n%s", b)
	}
	change(t, s, reg, func(r *Registry) { r.put(&Entry{Name: "new"}) })
	if got := reload(t, dir); !slices.Equal(names(got), []string{"new", "old"}) {
		t.Fatalf("after migration and a change: %v", names(got))
	}
}

// TestMissingSnapshotWithJournals: journals without their snapshot are not
// an empty registry.
func TestMissingSnapshotWithJournals(t *testing.T) {
	dir := t.TempDir()
	s := &Store{dir: dir}
	reg := loadForTest(t, s)
	change(t, s, reg, func(r *Registry) { r.put(&Entry{Name: "a"}) })
	_ = s.Close()
	if err := os.Remove(filepath.Join(dir, stateFile)); err != nil {
		t.Fatal(err)
	}
	_, err := (&Store{dir: dir}).Load()
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("got %v, want a refusal: the snapshot is missing", err)
	}
}

// TestAppendOnAFullDisk fills a small tmpfs: an append fails with ENOSPC,
// leaves no partial record behind, and appends work again once there is
// space, with every acknowledged change (and nothing else) on disk.
func TestAppendOnAFullDisk(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		testenv.Skipf(t, "cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	s := &Store{dir: dir}
	reg := loadForTest(t, s)
	reg, _ = change(t, s, reg, func(r *Registry) { r.put(&Entry{Name: "a"}) })
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 512)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	_ = f.Close()
	journal := filepath.Join(dir, journalName(0))
	before, _ := os.ReadFile(journal)
	big := &Entry{Name: "b", Args: []string{strings.Repeat("x", 16<<10)}}
	next := reg.begin()
	next.put(big)
	_, err = s.Append(next)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	if after, _ := os.ReadFile(journal); !bytes.Equal(after, before) {
		t.Fatalf("a failed append left %d bytes in the journal", len(after)-len(before))
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	change(t, s, reg, func(r *Registry) { r.put(&Entry{Name: "c"}) })
	if got := reload(t, dir); !slices.Equal(names(got), []string{"a", "c"}) {
		t.Fatalf("after the disk had space again: %v, want [a c]", names(got))
	}
}

// TestRegistryOwners: per-user counts follow put (also replacing an entry of
// another owner), del and begin/commit copies, without touching the
// published registry.
func TestRegistryOwners(t *testing.T) {
	pub := newRegistry()
	pub.put(&Entry{Name: "a", OwnerUID: 1})
	pub.put(&Entry{Name: "b", OwnerUID: 1})
	pub.commit()
	next := pub.begin()
	next.put(&Entry{Name: "b", OwnerUID: 2}) // b changes hands
	next.put(&Entry{Name: "c", OwnerUID: 2})
	next.del("a")
	next.del("zz")
	if next.owned(1) != 0 || next.owned(2) != 2 || next.len() != 2 {
		t.Fatalf("copy: uid1 %d uid2 %d len %d, want 0 2 2", next.owned(1), next.owned(2), next.len())
	}
	if pub.owned(1) != 2 || pub.owned(2) != 0 || pub.len() != 2 || !pub.has("a") {
		t.Fatalf("published registry changed: uid1 %d uid2 %d len %d", pub.owned(1), pub.owned(2), pub.len())
	}
	puts, dels := next.changes()
	if len(puts) != 2 || puts[0].Name != "b" || puts[1].Name != "c" || !slices.Equal(dels, []string{"a"}) {
		t.Fatalf("changes: puts %v dels %v", puts, dels)
	}
}

// stateBytes returns everything the store has on disk (snapshot, last good
// copy, journals), for tests that check a refused change wrote nothing.
func stateBytes(s *Store) ([]byte, error) {
	var all []byte
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	for _, de := range des {
		if n := de.Name(); n == stateFile || n == prevFile || isJournal(n) {
			b, err := os.ReadFile(filepath.Join(s.dir, n))
			if err != nil {
				return nil, err
			}
			all = append(append(all, n+"\n"...), b...)
		}
	}
	return all, nil
}

// TestReadersDoNotWaitForTheDisk: while a registry change waits for its
// journal write, ls, show and a second change's fn are not held up (before
// the journal, update held the registry lock across the write and fsync).
func TestReadersDoNotWaitForTheDisk(t *testing.T) {
	m, _ := newTestManager(t)
	if err := m.update(func(r *Registry) error { r.put(&Entry{Name: "web", Managed: true, OwnerUID: me().UID}); return nil }); err != nil {
		t.Fatal(err)
	}
	inWrite, release := make(chan struct{}), make(chan struct{})
	m.store.failSave = func(*Registry) error {
		close(inWrite)
		<-release
		return nil
	}
	done := make(chan error, 1)
	go func() {
		done <- m.update(func(r *Registry) error { e, _ := r.edit("web"); e.Desired = DesiredRunning; return nil })
	}()
	<-inWrite
	// The write is stuck "on the disk". Readers see the registry as it was.
	if got := m.list(false); len(got) != 1 || got[0].Name != "web" {
		t.Fatalf("ls during a write: %+v", got)
	}
	if res, err := m.show(me(), []string{"web"}); err != nil || len(res.Runtimes) != 1 {
		t.Fatalf("show during a write: %v %v", res, err)
	}
	if e, _ := m.entry("web"); e.Desired == DesiredRunning {
		t.Fatal("a change was visible before it was on disk")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e, _ := m.entry("web"); e.Desired != DesiredRunning {
		t.Fatal("the change was lost")
	}
}

// TestRunRecover: a corrupt registry.json stops the daemon with a hint to
// --recover when a last good copy exists; with --recover it starts from that
// copy and the journals after it, with every change, and keeps the corrupt
// file under another name.
func TestRunRecover(t *testing.T) {
	dir := t.TempDir()
	s := &Store{dir: dir, compactAt: 2}
	reg := loadForTest(t, s)
	for i := range 7 {
		var compact bool
		reg, compact = change(t, s, reg, func(r *Registry) {
			r.put(&Entry{Name: fmt.Sprintf("svc-%d", i%3), Managed: true, Path: "/bin/true", Desired: DesiredStopped, Restarts: i})
		})
		if compact {
			s.Compact(reg, nil)
			s.Wait()
		}
	}
	_ = s.Close()
	want := names(reg)
	p := filepath.Join(dir, stateFile)
	if err := os.WriteFile(p, []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(withRecover bool) error {
		f := newFake()
		m, err := New(Config{Mode: paths.User, Socket: filepath.Join(dir, "s.sock"), StateDir: dir, Recover: withRecover,
			Dial: func(context.Context) (Systemd, error) { return f, nil }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // load (and recover), then stop at once
		return m.Run(ctx)
	}
	err := run(false)
	if err == nil || !strings.Contains(err.Error(), "--recover") || !strings.Contains(err.Error(), prevFile) {
		t.Fatalf("without --recover: %v, want a refusal that points at --recover", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "{garbage" {
		t.Fatal("the corrupt file was changed without --recover")
	}
	if err := run(true); err != nil {
		t.Fatalf("with --recover: %v", err)
	}
	got := reload(t, dir)
	if !slices.Equal(names(got), want) || got.at("svc-0").Restarts != reg.at("svc-0").Restarts {
		t.Fatalf("recovered %v (svc-0 %+v), want %v (svc-0 %+v)", names(got), got.at("svc-0"), want, reg.at("svc-0"))
	}
	aside, _ := filepath.Glob(p + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("corrupt file kept as %v", aside)
	}
	if b, _ := os.ReadFile(aside[0]); string(b) != "{garbage" {
		t.Fatalf("%s holds %q", aside[0], b)
	}
}

// TestRecoverAgainAndMissingSnapshot: the last good copy stays usable after
// a recovery (its journals are kept), a second corruption is recovered as
// well, and a snapshot that is missing beside its journals is recovered too.
func TestRecoverAgainAndMissingSnapshot(t *testing.T) {
	dir := t.TempDir()
	s := &Store{dir: dir, compactAt: 2}
	reg := loadForTest(t, s)
	step := func(i int) {
		var compact bool
		reg, compact = change(t, s, reg, func(r *Registry) { r.put(&Entry{Name: fmt.Sprintf("svc-%d", i%4), Restarts: i}) })
		if compact {
			s.Compact(reg, nil)
			s.Wait()
		}
	}
	for i := range 9 {
		step(i)
	}
	_ = s.Close()
	p := filepath.Join(dir, stateFile)
	for round, damage := range []func() error{
		func() error { return os.WriteFile(p, []byte("{garbage"), 0o600) },
		func() error { return os.WriteFile(p, nil, 0o600) },
		func() error { return os.Remove(p) },
	} {
		if err := damage(); err != nil {
			t.Fatal(err)
		}
		var ce *CorruptError
		if _, err := (&Store{dir: dir}).Load(); !errors.As(err, &ce) || ce.Path != p {
			t.Fatalf("round %d: Load of a damaged snapshot: %v, want a CorruptError naming %s", round, err, p)
		}
		s = &Store{dir: dir, compactAt: 2}
		got, _, err := s.Recover()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !slices.Equal(names(got), names(reg)) || got.at("svc-1").Restarts != reg.at("svc-1").Restarts {
			t.Fatalf("round %d: recovered %v, want %v", round, names(got), names(reg))
		}
		reg = got
		for i := range 5 { // more changes and compactions after the recovery
			step(10*(round+1) + i)
		}
		_ = s.Close()
		if again := reload(t, dir); !slices.Equal(names(again), names(reg)) {
			t.Fatalf("round %d: after more changes: %v", round, names(again))
		}
	}
}

// TestJournalGen: journal file names and what is not one.
func TestJournalGen(t *testing.T) {
	for _, tt := range []struct {
		name string
		gen  uint64
		ok   bool
	}{
		{journalName(0), 0, true}, {journalName(42), 42, true}, {journalName(1<<63 + 5), 1<<63 + 5, true},
		{"registry-.log", 0, false}, {"registry-x1.log", 0, false}, {"registry-1.log.tmp", 0, false},
		{"registry-+1.log", 0, false}, {"registry-1", 0, false}, {"registry.json", 0, false},
		{"registry-99999999999999999999.log", 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if g, ok := journalGen(tt.name); g != tt.gen || ok != tt.ok {
				t.Fatalf("journalGen(%q) = %d, %v; want %d, %v", tt.name, g, ok, tt.gen, tt.ok)
			}
		})
	}
}

func isJournal(name string) bool { _, ok := journalGen(name); return ok }
