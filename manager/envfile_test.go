package manager

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// TestAddEnvFile: add --env-file PATH becomes the unit's EnvironmentFile=,
// kept in the registry, shown and given to the unit made after a daemon
// restart. systemd reads PATH at every start with its manager's rights, so
// the system daemon takes env files from root only (checkCredentials'
// policy); a user daemon checks the file with the caller's rights, with one
// answer for absent and not permitted.
func TestAddEnvFile(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root: the files are given to another uid")
	}
	const uid = 4242
	dir := openTempDir(t) // the non-root caller must reach the binary
	bin := exe(t, dir, "svc")
	write := func(name string, mode os.FileMode, owner int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("A=1\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, owner, owner); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mine := write("app.env", 0o600, uid)
	other := write("other.env", 0o640, uid)
	rootOnly := write("root.env", 0o600, 0)
	closed := filepath.Join(dir, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	hidden := filepath.Join(closed, "app.env")
	if err := os.WriteFile(hidden, []byte("A=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	user := Caller{UID: uid, GID: uid, PID: os.Getpid()}
	root := Caller{PID: os.Getpid()}
	const refused = "does not exist, is not a regular file or uid 4242 may not read it"
	tests := []struct {
		name   string
		mode   paths.Mode
		caller Caller
		files  []string
		class  error    // nil: accepted
		msg    string   // part of the refusal
		want   []string // accepted: as stored (nil: files)
	}{
		{"user daemon, own file", paths.User, user, []string{mine}, nil, "", nil},
		{"user daemon, two, cleaned, once each", paths.User, user, []string{mine, dir + "/./other.env", other}, nil, "", []string{mine, other}},
		{"user daemon, root", paths.User, root, []string{rootOnly}, nil, "", nil},
		{"system daemon, root", paths.System, root, []string{rootOnly}, nil, "", nil},
		{"system daemon, root, missing", paths.System, root, []string{filepath.Join(dir, "nope")}, ErrInvalid, "--env-file " + filepath.Join(dir, "nope") + " does not exist", nil},
		{"system daemon, another user", paths.System, user, []string{mine}, ErrDenied, "--env-file: only root may give environment files", nil},
		{"not readable", paths.User, user, []string{rootOnly}, ErrInvalid, refused, nil},
		{"not reachable", paths.User, user, []string{hidden}, ErrInvalid, refused, nil},
		{"missing", paths.User, user, []string{filepath.Join(dir, "nope")}, ErrInvalid, refused, nil},
		{"directory", paths.User, user, []string{dir}, ErrInvalid, "is not a regular file", nil},
		{"relative", paths.User, user, []string{"app.env"}, ErrInvalid, `--env-file "app.env": the path is not absolute`, nil},
		{"newline", paths.User, user, []string{mine + "\nx"}, ErrInvalid, "newline or NUL", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newTestManager(t)
			m.cfg.Mode = tt.mode
			spec := wire.AddSpec{Name: "svc", Path: bin, Start: true, EnvFiles: slices.Clone(tt.files)}
			_, err := m.add(t.Context(), tt.caller, spec, false, 0)
			if tt.class != nil {
				if !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("got %v, want %v mentioning %q", err, tt.class, tt.msg)
				}
				if _, ok := m.entry("svc"); ok {
					t.Fatal("refused, yet registered")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == nil {
				want = tt.files
			}
			if got := f.specs["svc"].EnvFiles; !slices.Equal(got, want) {
				t.Errorf("unit EnvironmentFile %v, want %v", got, want)
			}
			if got := m.view("svc").EnvFiles; !slices.Equal(got, want) {
				t.Errorf("shown env files %v, want %v", got, want)
			}
			if tt.mode != paths.User {
				return
			}
			m2 := restartDaemon(t, m, f)
			e, ok := m2.entry("svc")
			if !ok || !slices.Equal(e.EnvFiles, want) {
				t.Fatalf("after a daemon restart: env files %v, want %v", e.EnvFiles, want)
			}
			if got := m2.spec(e).EnvFiles; !slices.Equal(got, want) {
				t.Errorf("after a daemon restart: unit EnvironmentFile %v, want %v", got, want)
			}
		})
	}
}

// TestEnvFileRefusalsAlike: an env file that does not exist and one the
// caller may not read or reach get the same answer (no existence oracle).
func TestEnvFileRefusalsAlike(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root: the files belong to root, the caller is another uid")
	}
	dir := openTempDir(t)
	closed := filepath.Join(dir, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "secret"), filepath.Join(closed, "secret")} {
		if err := os.WriteFile(p, []byte("A=1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := newTestManager(t)
	user := Caller{UID: 4242, GID: 4242, PID: os.Getpid()}
	msg := func(path string) string {
		err := m.checkEnvFiles(user, []string{path})
		if err == nil {
			t.Fatalf("%s accepted", path)
		}
		return strings.ReplaceAll(err.Error(), path, "PATH")
	}
	absent := msg(filepath.Join(dir, "absent"))
	for _, tt := range []struct{ name, path string }{
		{"unreadable", filepath.Join(dir, "secret")},
		{"unreachable", filepath.Join(closed, "secret")},
		{"absent in an unreachable directory", filepath.Join(closed, "absent")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := msg(tt.path); got != absent {
				t.Errorf("got %q, want the answer for an absent file, %q", got, absent)
			}
		})
	}
}

// TestAddHarden: add --harden is kept in the entry, given to the unit,
// shown, and given again to the unit made after a daemon restart.
func TestAddHarden(t *testing.T) {
	m, f := newTestManager(t)
	bin := exe(t, t.TempDir(), "svc")
	root := Caller{PID: os.Getpid()}
	if _, err := m.add(t.Context(), root, wire.AddSpec{Name: "svc", Path: bin, Start: true, Harden: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.add(t.Context(), root, wire.AddSpec{Name: "plain", Path: bin, Start: true}, false, 0); err != nil {
		t.Fatal(err)
	}
	if !f.specs["svc"].Harden || f.specs["plain"].Harden {
		t.Errorf("unit Harden: svc %v, plain %v; want true, false", f.specs["svc"].Harden, f.specs["plain"].Harden)
	}
	if !m.view("svc").Harden || m.view("plain").Harden {
		t.Error("show: harden not as added")
	}
	m2 := restartDaemon(t, m, f)
	e, ok := m2.entry("svc")
	if !ok || !e.Harden || !m2.spec(e).Harden {
		t.Fatalf("after a daemon restart: entry %v, harden lost", ok)
	}
}
