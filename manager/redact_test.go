package manager

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/paths"
	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/units"
)

// TestRedactOthersEnvAndArgs: in system mode every member of the socket
// group may list and show every runtime, but only root and the runtime's
// owner see its arguments and environment (tokens live there). Every
// request form and every command that returns runtimes is checked.
func TestRedactOthersEnvAndArgs(t *testing.T) {
	m, f := newTestManager(t)
	m.cfg.Mode = paths.System
	alice := Caller{UID: 65534, GID: 65534, PID: os.Getpid()}
	bob := Caller{UID: 4242, GID: 4242, PID: os.Getpid()}
	root := Caller{PID: os.Getpid()}
	bin := exe(t, t.TempDir(), "svc")
	// Added by root, then given to alice directly, so that the test needs
	// no user 65534 in /etc/passwd.
	if _, err := m.add(t.Context(), root, wire.AddSpec{Name: "alice-web", Path: bin, Start: true,
		Args: []string{"--token", "s3cret-arg"}, Env: []string{"API_TOKEN=s3cret-env"}}, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.update(func(r *Registry) error { r.mod("alice-web").OwnerUID = alice.UID; return nil }); err != nil {
		t.Fatal(err)
	}
	// An orphan unit (no entry, so no owner) with a secret in its command line.
	f.set(units.Status{Name: "stray", Unit: units.Name("stray"), LoadState: "loaded", ActiveState: "active",
		SubState: "running", MainPID: 99999, ExecStart: []string{bin, "--password", "s3cret-orphan"}})

	lines := []string{
		"ls", "ps", "show alice-web", "show alice-*", "show stray",
		`{"cmd":"ls"}`, `{"cmd":"ps"}`, `{"cmd":"show","names":["alice-web"]}`, `{"cmd":"show","names":["stray"]}`,
	}
	tests := []struct {
		name   string
		caller Caller
		// sees: the secrets of alice-web, and of the orphan.
		seesOwn, seesOrphan bool
	}{
		{"another user", bob, false, false},
		{"the owner", alice, true, false},
		{"root", root, true, true},
	}
	for _, tt := range tests {
		for _, line := range lines {
			t.Run(tt.name+"/"+line, func(t *testing.T) {
				code, payload := m.dispatch(t.Context(), tt.caller, line)
				if code != wire.CodeOK {
					t.Fatalf("code %d: %s", code, payload)
				}
				out := string(payload)
				// The text tables of ls and ps have no argument column.
				detailed := strings.HasPrefix(line, "{") || strings.HasPrefix(line, "show")
				check := func(what, secret string, shown, sees bool) {
					t.Helper()
					if !shown {
						return
					}
					if got := strings.Contains(out, secret); got && !sees || !got && sees && detailed {
						t.Fatalf("%s %q in the reply: %v, want %v:\n%s", what, secret, got, sees, out)
					}
				}
				aliceShown := strings.Contains(line, "alice") || strings.Contains(line, "ls") || strings.Contains(line, "ps")
				orphanShown := strings.Contains(line, "stray") || strings.Contains(line, "ls")
				check("alice-web's argument", "s3cret-arg", aliceShown, tt.seesOwn)
				check("alice-web's environment", "s3cret-env", aliceShown, tt.seesOwn)
				check("the orphan's argument", "s3cret-orphan", orphanShown, tt.seesOrphan)
				if !tt.seesOwn && aliceShown && detailed && !strings.Contains(out, "hidden") && !strings.Contains(out, `"redacted":true`) {
					t.Fatalf("the reply does not say that arguments were withheld:\n%s", out)
				}
			})
		}
	}
}

// TestListMine: {"cmd":"ls","mine":true} lists the caller's own managed
// runtimes (root: every managed runtime), never an attached process or an
// orphan unit: what export and apply --prune work on, also over ssh where
// the client cannot know the uid the daemon sees.
func TestListMine(t *testing.T) {
	m, f := newTestManager(t)
	m.cfg.Mode = paths.System
	alice := Caller{UID: 65534, GID: 65534, PID: os.Getpid()}
	bob := Caller{UID: 4242, GID: 4242, PID: os.Getpid()}
	root := Caller{PID: os.Getpid()}
	bin := exe(t, t.TempDir(), "svc")
	for _, n := range []string{"alice-web", "bob-web"} {
		if _, err := m.add(t.Context(), root, wire.AddSpec{Name: n, Path: bin}, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.update(func(r *Registry) error {
		r.mod("alice-web").OwnerUID = alice.UID
		r.mod("bob-web").OwnerUID = bob.UID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.attach(t.Context(), me(), attachSpec("attached", child(t).Process.Pid)); err != nil {
		t.Fatal(err)
	}
	if err := m.update(func(r *Registry) error { r.mod("attached").OwnerUID = alice.UID; return nil }); err != nil {
		t.Fatal(err)
	}
	f.set(units.Status{Name: "stray", Unit: units.Name("stray"), LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 99999})

	tests := []struct {
		name   string
		caller Caller
		line   string
		want   string
	}{
		{"alice mine", alice, `{"cmd":"ls","mine":true}`, "alice-web"},
		{"bob mine", bob, `{"cmd":"ls","mine":true}`, "bob-web"},
		{"root mine", root, `{"cmd":"ls","mine":true}`, "alice-web bob-web"},
		{"alice all", alice, `{"cmd":"ls"}`, "alice-web attached bob-web stray"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, payload := m.dispatch(t.Context(), tt.caller, tt.line)
			if code != wire.CodeOK {
				t.Fatalf("code %d: %s", code, payload)
			}
			var res wire.Result
			if err := json.Unmarshal(payload, &res); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range res.Runtimes {
				names = append(names, r.Name)
			}
			if got := strings.Join(names, " "); got != tt.want {
				t.Fatalf("%s: %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}
