//go:build linux

package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRunFallsBackToNet(t *testing.T) {
	requireURing(t)
	injected := errors.New("injected ring failure")
	fail := func(c *config) { c.testRingFailure = injected }
	tests := []struct {
		name    string
		engine  Engine
		wantErr bool
	}{
		{"auto falls back", EngineAuto, false},
		{"uring required fails", EngineURing, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fds := countFDs(t)
			s, err := New("127.0.0.1:0", WithEngine(tt.engine), WithLoops(2), fail)
			if err != nil {
				t.Fatal(err)
			}
			if s.Engine() != EngineURing {
				t.Fatalf("Engine before Run: got %s, want uring", s.Engine())
			}
			if tt.wantErr {
				if err := s.Run(context.Background()); !errors.Is(err, injected) {
					t.Fatalf("Run: got %v, want the setup error", err)
				}
				if got := countFDs(t); got > fds {
					t.Errorf("fds after failed Run: got %d, want <= %d", got, fds)
				}
				return
			}
			echo(s)
			errc := make(chan error, 1)
			go func() { errc <- s.Run(context.Background()) }()
			c := dial(t, s)
			c.send(t, "fallback")
			if got := c.line(t); got != "fallback" {
				t.Fatalf("got %q", got)
			}
			if s.Engine() != EngineNet {
				t.Errorf("Engine after fallback: got %s, want net", s.Engine())
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAcceptedSocketsHaveNoDelay(t *testing.T) {
	requireURing(t)
	eng := EngineURing
	got := make(chan int, 1)
	s := serve(t, eng, func(s *Server) {
		s.OnConnect(func(c *Conn) {
			v, err := unix.GetsockoptInt(c.u.fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
			if err != nil {
				v = -1
			}
			got <- v
		})
	})
	dial(t, s)
	if v := <-got; v != 1 {
		t.Errorf("TCP_NODELAY on an accepted socket: got %d, want 1", v)
	}
}

func TestIdleLoopSleeps(t *testing.T) {
	// Connected but silent clients must not make a loop spin.
	allEngines(t, func(t *testing.T, eng Engine) {
		s := serve(t, eng, echo, WithLoops(1))
		for i := 0; i < 5; i++ {
			c := dial(t, s)
			c.send(t, "x")
			c.line(t)
		}
		cpu := func() time.Duration {
			var ru unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &ru)
			return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		time.Sleep(50 * time.Millisecond)
		before := cpu()
		time.Sleep(500 * time.Millisecond)
		if used := cpu() - before; used > 50*time.Millisecond {
			t.Errorf("CPU used by an idle server in 500ms: %v, want < 50ms", used)
		}
	})
}

func TestTinySubmissionQueue(t *testing.T) {
	// With an 8-entry SQ, bursts of accepts, recvs and sends fill it all the
	// time: the full-queue path of getSQE must keep everything working.
	requireURing(t)
	eng := EngineURing
	tiny := func(c *config) { c.sqEntries = 8 }
	s := serve(t, eng, func(s *Server) {
		s.OnMessage(func(c *Conn, msg []byte) {
			_ = c.Send(msg)
			s.Broadcast([]byte("b"), c)
		})
	}, tiny, WithLoops(1))
	const n = 200
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, s)
	}
	for i, c := range clients {
		c.send(t, "m"+strconv.Itoa(i))
	}
	for i, c := range clients {
		want := "m" + strconv.Itoa(i)
		for {
			got := c.line(t)
			if got == want {
				break
			}
			if got != "b" {
				t.Fatalf("client %d: got %q, want %q or broadcasts", i, got, want)
			}
		}
	}
}

// TestHelperDialer is not a test: TestAcceptSurvivesEMFILE runs the test
// binary with it to connect from another process (whose fd table is not
// full) once a byte arrives on stdin.
func TestHelperDialer(t *testing.T) {
	addr := os.Getenv("SERVER_TEST_HELPER_DIAL")
	if addr == "" {
		t.Skip("helper process only")
	}
	var b [1]byte
	os.Stdin.Read(b[:])
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		os.Exit(3)
	}
	defer nc.Close()
	time.Sleep(300 * time.Millisecond)
}

func TestAcceptSurvivesEMFILE(t *testing.T) {
	allEngines(t, func(t *testing.T, eng Engine) {
		if eng == EngineURing {
			// An armed multishot accept keeps the RLIMIT_NOFILE it saw when
			// it was prepared, so lowering the limit cannot provoke EMFILE
			// short of really filling the fd table.
			t.Skip("cannot provoke EMFILE for an armed io_uring accept")
		}
		var logs syncBuffer
		s := serve(t, eng, echo, WithLoops(1), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		helper := exec.Command(os.Args[0], "-test.run=^TestHelperDialer$")
		helper.Env = append(os.Environ(), "SERVER_TEST_HELPER_DIAL="+s.Addr().String())
		go1, err := helper.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := helper.Start(); err != nil {
			t.Fatal(err)
		}
		defer helper.Wait()
		defer go1.Close()

		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		old := lim
		restore := func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) }
		t.Cleanup(restore)
		lim.Cur = uint64(countFDs(t) + 8)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			t.Skip(err)
		}
		// Fill this process's fd table with client connections.
		var clients []net.Conn
		for {
			nc, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				break
			}
			clients = append(clients, nc)
		}
		time.Sleep(20 * time.Millisecond)
		// A connection from another process: its accept fails with EMFILE.
		go1.Write([]byte{1})
		eventually(t, 5*time.Second, "an accept failure", func() bool { return strings.Contains(logs.String(), "accept failed") })
		for _, nc := range clients {
			nc.Close()
		}
		restore()
		c := dial(t, s)
		c.send(t, "after EMFILE")
		if got := c.line(t); got != "after EMFILE" {
			t.Fatalf("got %q", got)
		}
	})
}
