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
	"github.com/socketley/socketley/units"
)

// TestAddCredential: add --credential ID:PATH becomes the unit's
// LoadCredential=, kept in the registry and shown (IDs and paths only).
// systemd reads PATH with its manager's rights, so the system daemon takes
// credentials from root only (a non-root caller could point it at
// /etc/shadow, now or, by swapping the file, at any later start); a user
// daemon checks the file with the caller's rights, with one answer for a
// file that is absent and one the caller may not read. Bad IDs, paths and
// duplicates are refused with what to do.
func TestAddCredential(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root: the files are given to another uid")
	}
	const uid = 4242
	dir := openTempDir(t) // the non-root caller must reach the binary
	bin := exe(t, dir, "svc")
	write := func(name string, mode os.FileMode, owner int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("s3cret"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, owner, owner); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mine := write("token", 0o600, uid)          // the caller's own secret
	rootOnly := write("root-token", 0o600, 0)   // exists, the caller may not read it
	shared := write("shared-token", 0o640, uid) // any path form: cleaned
	closed := filepath.Join(dir, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	hidden := filepath.Join(closed, "token")
	if err := os.WriteFile(hidden, []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	user := Caller{UID: uid, GID: uid, PID: os.Getpid()}
	root := Caller{PID: os.Getpid()}
	cred := func(id, path string) wire.Credential { return wire.Credential{ID: id, Path: path} }
	tests := []struct {
		name   string
		mode   paths.Mode
		caller Caller
		creds  []wire.Credential
		class  error             // nil: accepted
		msg    string            // part of the refusal
		want   []wire.Credential // accepted: as stored (paths cleaned)
	}{
		{"user daemon, own file", paths.User, user, []wire.Credential{cred("token", mine)}, nil, "", nil},
		{"user daemon, two", paths.User, user, []wire.Credential{cred("token", mine), cred("tls.key", dir+"/./shared-token")}, nil, "",
			[]wire.Credential{cred("token", mine), cred("tls.key", shared)}},
		{"user daemon, root", paths.User, root, []wire.Credential{cred("token", rootOnly)}, nil, "", nil},
		{"system daemon, root", paths.System, root, []wire.Credential{cred("token", rootOnly)}, nil, "", nil},
		{"system daemon, root, a file root may not reach", paths.System, root, []wire.Credential{cred("token", filepath.Join(dir, "nope"))}, ErrInvalid, "does not exist", nil},
		{"system daemon, another user", paths.System, user, []wire.Credential{cred("token", mine)}, ErrDenied, "only root may add credentials", nil},
		{"not readable", paths.User, user, []wire.Credential{cred("token", rootOnly)}, ErrInvalid, "does not exist, is not a regular file or uid 4242 may not read it", nil},
		{"not reachable", paths.User, user, []wire.Credential{cred("token", hidden)}, ErrInvalid, "does not exist, is not a regular file or uid 4242 may not read it", nil},
		{"missing", paths.User, user, []wire.Credential{cred("token", filepath.Join(dir, "nope"))}, ErrInvalid, "does not exist, is not a regular file or uid 4242 may not read it", nil},
		{"directory", paths.User, user, []wire.Credential{cred("token", dir)}, ErrInvalid, "is not a regular file", nil},
		{"relative path", paths.User, user, []wire.Credential{cred("token", "token")}, ErrInvalid, `token:token: the path is not absolute`, nil},
		{"slash in ID", paths.User, user, []wire.Credential{cred("a/b", mine)}, ErrInvalid, `bad ID "a/b": use 1-255 letters`, nil},
		{"ID ..", paths.User, user, []wire.Credential{cred("..", mine)}, ErrInvalid, `bad ID ".."`, nil},
		{"empty ID", paths.User, user, []wire.Credential{cred("", mine)}, ErrInvalid, `bad ID ""`, nil},
		{"long ID", paths.User, user, []wire.Credential{cred(strings.Repeat("x", 256), mine)}, ErrInvalid, "bad ID", nil},
		{"duplicate ID", paths.User, user, []wire.Credential{cred("token", mine), cred("token", shared)}, ErrInvalid, `ID "token" given twice`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newTestManager(t)
			m.cfg.Mode = tt.mode
			spec := wire.AddSpec{Name: "svc", Path: bin, Start: true, Credentials: slices.Clone(tt.creds)}
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
				want = tt.creds
			}
			var wantUnit []units.Credential
			for _, c := range want {
				wantUnit = append(wantUnit, units.Credential{ID: c.ID, Path: c.Path})
			}
			if got := f.specs["svc"].Credentials; !slices.Equal(got, wantUnit) {
				t.Errorf("unit LoadCredential %v, want %v", got, wantUnit)
			}
			if got := m.view("svc").Credentials; !slices.Equal(got, want) {
				t.Errorf("shown credentials %v, want %v", got, want)
			}
			if tt.mode != paths.User {
				return
			}
			// Kept across a daemon restart: the reconcile's and every
			// later start's unit loads them again.
			m2 := restartDaemon(t, m, f)
			e, ok := m2.entry("svc")
			if !ok || !slices.Equal(e.Credentials, want) {
				t.Fatalf("after a daemon restart: credentials %v, want %v", e.Credentials, want)
			}
			if got := m2.spec(e).Credentials; !slices.Equal(got, wantUnit) {
				t.Errorf("after a daemon restart: unit LoadCredential %v, want %v", got, wantUnit)
			}
		})
	}
}

// TestCredentialRefusalsAlike: a credential file that does not exist and
// one the caller may not read or reach get the same answer, so that add is
// no file-existence oracle.
func TestCredentialRefusalsAlike(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root: the files belong to root, the caller is another uid")
	}
	dir := openTempDir(t)
	closed := filepath.Join(dir, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "secret"), filepath.Join(closed, "secret")} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := newTestManager(t)
	user := Caller{UID: 4242, GID: 4242, PID: os.Getpid()}
	msg := func(path string) string {
		err := m.checkCredentials(user, []wire.Credential{{ID: "t", Path: path}})
		if err == nil {
			t.Fatalf("%s accepted", path)
		}
		return strings.ReplaceAll(err.Error(), path, "PATH")
	}
	absent := msg(filepath.Join(dir, "absent"))
	tests := []struct{ name, path string }{
		{"unreadable", filepath.Join(dir, "secret")},
		{"unreachable", filepath.Join(closed, "secret")},
		{"absent in an unreachable directory", filepath.Join(closed, "absent")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := msg(tt.path); got != absent {
				t.Errorf("got %q, want the answer for an absent file, %q", got, absent)
			}
		})
	}
}
