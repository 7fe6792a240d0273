//go:build linux

package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/testenv"
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
	// Connected but silent clients must not make the server spin: the
	// io_uring loop must block in the kernel, the net engine's goroutines
	// in the netpoller.
	allEngines(t, func(t *testing.T, eng Engine) {
		s := serve(t, eng, echo, WithLoops(1))
		const conns = 5
		for i := 0; i < conns; i++ {
			c := dial(t, s)
			c.send(t, "x")
			c.line(t)
		}
		if eng == EngineURing {
			uringLoopSleeps(t, s)
		} else {
			netEngineParks(t, conns)
		}
	})
}

// engineIdle reports whether the engine has nothing to do for c: its
// io_uring loop sleeps in io_uring_enter, or its net writer has emptied the
// queue and waits to be kicked.
func engineIdle(c *Conn) bool {
	c.mu.Lock()
	idle := !c.kicked && len(c.pending) == 0
	c.mu.Unlock()
	if !idle {
		return false
	}
	if _, ok := c.eng.(*uringEngine); !ok {
		return true
	}
	// c.u.l is set before c is published by Conns and never changes.
	l := c.u.l
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sleeping && len(l.queue) == 0
}

// uringLoopSleeps checks that the only loop of s, idle, blocks in
// io_uring_enter and stays there: its thread does (next to) no work.
func uringLoopSleeps(t *testing.T, s *Server) {
	t.Helper()
	s.mu.Lock()
	l := s.eng.(*uringEngine).loops[0]
	s.mu.Unlock()
	eventually(t, "the loop to go to sleep", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.sleeping
	})
	// The loop is locked to its thread; it is the only thread of this
	// process blocked in io_uring_enter (no other ring is open).
	var tid int
	eventually(t, "the idle loop to block in io_uring_enter (a loop that polls never does)", func() bool {
		tids := threadsInSyscall(t, unix.SYS_IO_URING_ENTER)
		if len(tids) > 1 {
			t.Fatalf("threads in io_uring_enter: %v, want the loop's only", tids)
		}
		if len(tids) == 1 {
			tid = tids[0]
		}
		return tid != 0
	})
	cpu0, wakes0 := threadCPU(t, tid), threadSwitches(t, tid)
	// What a blocked loop does in this window does not grow with its
	// length or with the load of the machine, so the window cannot make
	// the test fail; it only gives a spinning loop, or one that wakes up
	// on a timer, the time to show.
	time.Sleep(200 * time.Millisecond)
	cpu, wakes := threadCPU(t, tid)-cpu0, threadSwitches(t, tid)-wakes0
	// An idle loop still shows a few switches and some µs of CPU here, all
	// inside io_uring_enter and independent of the window and the load:
	// the batch wait's min-wait timer fires once, and the loop may just
	// have entered the wait (measured under -race on a busy 2-core
	// machine: at most 4 switches and 0.12ms, and it never returned to
	// user space). A loop woken by a timer every 5ms switches 40 times in
	// the window, one that polls every 1ms some 300 times (4ms of CPU),
	// and one that spins uses tens of ms.
	if wakes > 20 || cpu > 2*time.Millisecond {
		t.Errorf("idle io_uring loop: switched out %d times and used %v of CPU in 200ms, want it blocked", wakes, cpu)
	}
}

// threadsInSyscall returns the threads of this process (io_uring's own
// workers left out) that are blocked in system call nr.
func threadsInSyscall(t *testing.T, nr int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		testenv.Skipf(t, "no /proc/self/task: %v", err)
	}
	var tids []int
	for _, e := range ents {
		comm, err1 := os.ReadFile("/proc/self/task/" + e.Name() + "/comm")
		sc, err2 := os.ReadFile("/proc/self/task/" + e.Name() + "/syscall")
		if err1 != nil || err2 != nil || strings.HasPrefix(string(comm), "iou-") {
			continue // the thread exited meanwhile, or is an io_uring worker
		}
		if f := strings.Fields(string(sc)); len(f) > 0 && f[0] == strconv.Itoa(nr) {
			tid, _ := strconv.Atoi(e.Name())
			tids = append(tids, tid)
		}
	}
	return tids
}

// threadCPU returns the CPU time used by thread tid of this process.
func threadCPU(t *testing.T, tid int) time.Duration {
	t.Helper()
	// The clock of one thread: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
	clock := (^int32(tid))<<3 | 6
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		t.Fatalf("CPU clock of thread %d: %v", tid, err)
	}
	return time.Duration(ts.Nano())
}

// threadSwitches returns how many times thread tid of this process was
// switched out (it blocked or was preempted).
func threadSwitches(t *testing.T, tid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
			m, _ := strconv.Atoi(strings.TrimSpace(v))
			n += m
		}
	}
	return n
}

// netEngineParks waits until every goroutine of the net engine is blocked:
// the accept loop and the readers in the netpoller, the writers on their
// wake channel.
func netEngineParks(t *testing.T, conns int) {
	t.Helper()
	deadline := time.Now().Add(failsafe)
	for {
		buf := make([]byte, 1<<20)
		for {
			n := runtime.Stack(buf, true)
			if n < len(buf) {
				buf = buf[:n]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		found, busy := 0, ""
		for _, g := range strings.Split(string(buf), "\n\n") {
			if !strings.Contains(g, "(*netEngine).acceptLoop(") && !strings.Contains(g, "(*netEngine).reader(") &&
				!strings.Contains(g, "(*netEngine).writer(") {
				continue
			}
			found++
			header, _, _ := strings.Cut(g, "\n")
			_, state, _ := strings.Cut(header, "[")
			state, _, _ = strings.Cut(state, "]")
			state, _, _ = strings.Cut(state, ",")
			if state != "IO wait" && state != "chan receive" {
				busy = g
			}
		}
		if busy == "" && found == 1+2*conns {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("net engine goroutines: %d, want %d, all blocked; one that is not:\n%s", found, 1+2*conns, busy)
		}
		time.Sleep(5 * time.Millisecond)
	}
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
// full) once a byte arrives on stdin, and to stay connected until stdin is
// closed.
func TestHelperDialer(t *testing.T) {
	addr := os.Getenv("SERVER_TEST_HELPER_DIAL")
	if addr == "" {
		testenv.Skip(t, "helper process only")
	}
	var b [1]byte
	os.Stdin.Read(b[:])
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		os.Exit(3)
	}
	defer nc.Close()
	// Stay connected until the test is done with us (it closes stdin).
	os.Stdin.Read(b[:])
}

func TestAcceptSurvivesEMFILE(t *testing.T) {
	allEngines(t, func(t *testing.T, eng Engine) {
		if eng == EngineURing {
			// An armed multishot accept keeps the RLIMIT_NOFILE it saw when
			// it was prepared, so lowering the limit cannot provoke EMFILE
			// short of really filling the fd table.
			testenv.Skip(t, "cannot provoke EMFILE for an armed io_uring accept")
		}
		var logs logSink
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
			testenv.Skip(t, err.Error())
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
		// The table is full and stays full until the clients are closed: a
		// connection from another process cannot be accepted (EMFILE).
		go1.Write([]byte{1})
		logs.waitFor(t, "accept failed")
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
