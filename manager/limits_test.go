package manager

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// TestSpecSizeLimits: too many arguments or environment entries, or too
// many bytes in all, are refused before anything is registered.
func TestSpecSizeLimits(t *testing.T) {
	m, f := newTestManager(t)
	good := exe(t, t.TempDir(), "good")
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	tests := []struct {
		name string
		spec wire.AddSpec
		msg  string
	}{
		{"args", wire.AddSpec{Args: many(wire.MaxArgs+1, func(int) string { return "x" })}, fmt.Sprintf("%d arguments; at most %d", wire.MaxArgs+1, wire.MaxArgs)},
		{"env", wire.AddSpec{Env: many(wire.MaxEnv+1, func(i int) string { return fmt.Sprintf("K%d=v", i) })}, fmt.Sprintf("%d --env entries; at most %d", wire.MaxEnv+1, wire.MaxEnv)},
		{"bytes", wire.AddSpec{Args: []string{strings.Repeat("a", wire.MaxSpecBytes)}}, fmt.Sprintf("at most %d are accepted", wire.MaxSpecBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Name, tt.spec.Path = "big", good
			_, err := m.add(t.Context(), me(), tt.spec, false, 0)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tt.msg)
			}
			if m.reg.has("big") {
				t.Fatal("a refused add was registered")
			}
		})
	}
	// At the limits exactly, it is accepted.
	s := wire.AddSpec{Name: "edge", Path: good, Args: many(wire.MaxArgs, func(int) string { return "x" }),
		Env: many(wire.MaxEnv, func(i int) string { return fmt.Sprintf("K%d=v", i) })}
	if _, err := m.add(t.Context(), me(), s, false, 0); err != nil {
		t.Fatalf("add at the limits: %v", err)
	}
	if len(f.calls) != 0 {
		t.Fatalf("systemd was called: %v", f.calls)
	}
}

// TestPerUserRuntimeLimit: a non-root uid may register at most
// MaxRuntimesPerUser runtimes (managed and attached together); another uid
// and root are not held back by it; a removal frees a place.
func TestPerUserRuntimeLimit(t *testing.T) {
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root to add as another uid")
	}
	m, _ := newTestManager(t)
	m.cfg.MaxRuntimesPerUser = 3
	dir := openTempDir(t)
	good := exe(t, dir, "good")
	if err := os.Chmod(good, 0o755); err != nil {
		t.Fatal(err)
	}
	alice := Caller{UID: 4242, GID: 4242, PID: os.Getpid()}
	bob := Caller{UID: 4343, GID: 4343, PID: os.Getpid()}
	add := func(c Caller, name string) error {
		_, err := m.add(t.Context(), c, wire.AddSpec{Name: name, Path: good}, false, 0)
		return err
	}
	for i := range 3 {
		if err := add(alice, fmt.Sprintf("a%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := stateBytes(m.store)
	err := add(alice, "a3")
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "uid 4242 already has 3 runtimes") || !strings.Contains(err.Error(), "--max-runtimes-per-user") {
		t.Fatalf("4th add of uid 4242: %v, want the per-user limit", err)
	}
	if after, _ := stateBytes(m.store); string(after) != string(before) || m.reg.has("a3") {
		t.Fatal("a refused add changed the registry")
	}
	if err := add(bob, "b0"); err != nil {
		t.Fatalf("another uid is held back by uid 4242's runtimes: %v", err)
	}
	if err := add(me(), "root0"); err != nil {
		t.Fatalf("root is limited: %v", err)
	}
	if _, err := m.remove(t.Context(), alice, []string{"a0"}); err != nil {
		t.Fatal(err)
	}
	if err := add(alice, "a3"); err != nil {
		t.Fatalf("after a remove there is a place again: %v", err)
	}
	// The counts survive a daemon restart (they are rebuilt from disk).
	if reg := reload(t, m.cfg.StateDir); reg.owned(4242) != 3 || reg.owned(4343) != 1 {
		t.Fatalf("reloaded counts: uid 4242 %d, uid 4343 %d", reg.owned(4242), reg.owned(4343))
	}
}
