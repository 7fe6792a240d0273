package units

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSessionBusAddress(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("unix", filepath.Join(dir, "bus"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	noSocket := t.TempDir()

	tests := []struct {
		name    string
		session string
		runtime string
		want    string // "" = ErrNoBus
	}{
		{"session address wins", "unix:path=/x/bus", dir, "unix:path=/x/bus"},
		{"runtime dir socket", "", dir, "unix:path=" + filepath.Join(dir, "bus")},
		{"autolaunch is not an address", "autolaunch:", dir, "unix:path=" + filepath.Join(dir, "bus")},
		{"runtime dir without socket", "", noSocket, ""},
		{"nothing", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DBUS_SESSION_BUS_ADDRESS", tt.session)
			t.Setenv("XDG_RUNTIME_DIR", tt.runtime)
			got, err := sessionBusAddress()
			if tt.want == "" {
				if !errors.Is(err, ErrNoBus) {
					t.Fatalf("got %q, %v; want ErrNoBus", got, err)
				}
				for _, hint := range []string{"DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "scripts/systemd-sandbox.sh"} {
					if !strings.Contains(err.Error(), hint) {
						t.Errorf("error %q does not mention %s", err, hint)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestDialUserWithoutBus(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	_, err := Dial(t.Context(), User)
	if !errors.Is(err, ErrNoBus) {
		t.Fatalf("got %v, want ErrNoBus", err)
	}
	if !strings.HasPrefix(err.Error(), "dial user manager: no user D-Bus session bus") {
		t.Errorf("got %q, want the dial prefix and the hint", err)
	}
}

func TestDialRefused(t *testing.T) {
	// A socket path nobody listens on: the connect fails at once.
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "nobody"))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, User)
	if !errors.Is(err, ErrNoBus) {
		t.Fatalf("got %v, want ErrNoBus", err)
	}
}

func TestDialSilentBus(t *testing.T) {
	// A listener that accepts and never speaks: Dial must give up at ctx's
	// deadline instead of hanging in the D-Bus handshake.
	path := filepath.Join(t.TempDir(), "bus")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+path)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	// Only the deadline can end the handshake: a Dial that ignored it would
	// hang, and return to nothing but the bound below (which only keeps the
	// test from hanging).
	done := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, User)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNoBus) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want ErrNoBus and DeadlineExceeded", err)
		}
	case <-time.After(hangBound):
		t.Fatalf("Dial still waits for the silent bus %v after its deadline", hangBound)
	}
}

// hangBound ends a wait that would otherwise hang; it is not a speed goal.
const hangBound = 2 * time.Minute

func TestDialUnknownScope(t *testing.T) {
	if _, err := Dial(t.Context(), Scope(9)); !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

func TestWithDefault(t *testing.T) {
	before := time.Now()
	ctx, cancel := withDefault(t.Context(), time.Hour)
	after := time.Now()
	defer cancel()
	if dl, ok := ctx.Deadline(); !ok || dl.Before(before.Add(time.Hour)) || dl.After(after.Add(time.Hour)) {
		t.Errorf("default deadline: %v %v, want one hour from the call", dl, ok)
	}
	short, cancel2 := context.WithTimeout(t.Context(), time.Second)
	defer cancel2()
	ctx, cancel3 := withDefault(short, time.Hour)
	defer cancel3()
	want, _ := short.Deadline()
	if dl, ok := ctx.Deadline(); !ok || !dl.Equal(want) {
		t.Errorf("the caller's deadline %v was replaced: %v %v", want, dl, ok)
	}
}
