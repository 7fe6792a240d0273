package manager

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// TestAddChecksThePathWithTheCallersRights: the daemon runs as root, but
// add must not tell a caller anything about a path the caller could not
// look at itself. A binary (or working directory) behind a directory the
// caller may not search gets the same answer whether it exists or not,
// and a path the caller may reach is judged by the caller's permissions.
func TestAddChecksThePathWithTheCallersRights(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root to make files of other owners")
	}
	m, _ := newTestManager(t)
	const uid, gid, friends = 4242, 4242, 4343
	caller := Caller{UID: uid, GID: gid, PID: os.Getpid(), Groups: []int{friends}}

	base := openTempDir(t)
	mkdir := func(name string, mode os.FileMode, g int) string {
		t.Helper()
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 0, g); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := func(dir, name string, mode os.FileMode, owner int) string {
		t.Helper()
		p := exe(t, dir, name)
		if err := os.Chown(p, owner, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := mkdir("secret", 0o700, 0)       // root's: nobody else may search it
	shared := mkdir("shared", 0o750, friends) // the caller's group may search it
	open := mkdir("open", 0o755, 0)
	hidden := file(secret, "bin", 0o755, 0)
	if err := os.Mkdir(filepath.Join(secret, "wd"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(open, "link")
	if err := os.Symlink(hidden, link); err != nil {
		t.Fatal(err)
	}
	good := file(open, "good", 0o755, 0)
	rootOnly := file(open, "rootonly", 0o700, 0)
	mine := file(open, "mine", 0o700, uid)
	viaGroup := file(shared, "bin", 0o755, 0)

	// The refusal for a path behind an unsearchable directory, whether it
	// exists or not; %s is the path.
	check := func(spec wire.AddSpec) error {
		spec.Name = "x"
		return m.validateAdd(caller, &spec)
	}
	sameAnswer := func(t *testing.T, a, b wire.AddSpec, pa, pb string) {
		t.Helper()
		ea, eb := check(a), check(b)
		if ea == nil || eb == nil {
			t.Fatalf("accepted: %v / %v", ea, eb)
		}
		if !errors.Is(ea, ErrInvalid) || !errors.Is(eb, ErrInvalid) {
			t.Fatalf("class: %v / %v, want ErrInvalid", ea, eb)
		}
		if strings.ReplaceAll(ea.Error(), pa, "P") != strings.ReplaceAll(eb.Error(), pb, "P") {
			t.Fatalf("different answers for an existing and a missing path:\n  %v\n  %v", ea, eb)
		}
	}
	t.Run("binary behind a directory the caller may not search", func(t *testing.T) {
		missing := filepath.Join(secret, "nope")
		sameAnswer(t, wire.AddSpec{Path: hidden}, wire.AddSpec{Path: missing}, hidden, missing)
	})
	t.Run("symlink into such a directory", func(t *testing.T) {
		dangling := filepath.Join(open, "dangling")
		if err := os.Symlink(filepath.Join(secret, "nope"), dangling); err != nil {
			t.Fatal(err)
		}
		sameAnswer(t, wire.AddSpec{Path: link}, wire.AddSpec{Path: dangling}, link, dangling)
	})
	t.Run("working directory behind a directory the caller may not search", func(t *testing.T) {
		wd, missing := filepath.Join(secret, "wd"), filepath.Join(secret, "nowd")
		sameAnswer(t, wire.AddSpec{Path: good, WorkDir: wd}, wire.AddSpec{Path: good, WorkDir: missing}, wd, missing)
	})

	tests := []struct {
		name   string
		caller Caller
		spec   wire.AddSpec
		msg    string // "" = accepted
	}{
		{"reachable and executable", caller, wire.AddSpec{Path: good}, ""},
		{"executable by the owner only, the caller owns it", caller, wire.AddSpec{Path: mine}, ""},
		{"executable by root only", caller, wire.AddSpec{Path: rootOnly}, "not executable by uid 4242"},
		{"directory searchable through a supplementary group", caller, wire.AddSpec{Path: viaGroup}, ""},
		{"without the group", Caller{UID: uid, GID: gid}, wire.AddSpec{Path: viaGroup}, "does not exist or uid 4242 may not reach it"},
		{"missing in a reachable directory", caller, wire.AddSpec{Path: filepath.Join(open, "nope")}, "does not exist or uid 4242 may not reach it"},
		{"root may use what it can reach", Caller{PID: os.Getpid()}, wire.AddSpec{Path: hidden}, ""},
		{"root, missing", Caller{PID: os.Getpid()}, wire.AddSpec{Path: filepath.Join(secret, "nope")}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			spec.Name = "x"
			err := m.validateAdd(tt.caller, &spec)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tt.msg)
			}
		})
	}
}

// openTempDir returns a t.TempDir that every user may search (t.TempDir
// makes its directories 0700, which keeps other uids' add out).
func openTempDir(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return base
}
