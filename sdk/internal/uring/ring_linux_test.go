package uring

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/testenv"
)

// newRing creates a ring on the calling (locked) thread or skips the test
// when io_uring is not available here.
func newRing(t *testing.T, flags uint32) *Ring {
	t.Helper()
	p := &Params{Flags: flags}
	if flags&SetupCQSize != 0 {
		p.CQEntries = 256
	}
	r, err := New(64, p)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		testenv.Skipf(t, "io_uring unavailable: %v", err)
	}
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func waitCQE(t *testing.T, r *Ring) CQE {
	t.Helper()
	var cqes [1]CQE
	for {
		if n := r.PeekBatch(cqes[:]); n == 1 {
			return cqes[0]
		}
		if _, err := r.SubmitAndWait(1); err != nil && !IsTemporary(err) {
			t.Fatalf("SubmitAndWait: %v", err)
		}
	}
}

func TestSetupAndNop(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tests := []struct {
		name  string
		flags uint32
	}{
		{"plain", 0},
		{"single issuer defer taskrun", SetupSingleIssuer | SetupDeferTaskrun | SetupSubmitAll},
		{"no sq array", SetupSingleIssuer | SetupDeferTaskrun | SetupNoSQArray},
		{"cq size", SetupCQSize | SetupCoopTaskrun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A subtest runs on a goroutine of its own: lock it too. An
			// IORING_SETUP_SINGLE_ISSUER ring refuses (EEXIST) a submit
			// from any thread but the one that created it.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			r := newRing(t, tt.flags)
			if r.SQEntries() != 64 {
				t.Errorf("SQEntries: got %d, want 64", r.SQEntries())
			}
			if r.CQEntries() < r.SQEntries() {
				t.Errorf("CQEntries: got %d, want >= %d", r.CQEntries(), r.SQEntries())
			}
			// More round trips than SQ entries, so the rings wrap around.
			for i := uint64(1); i <= 300; i++ {
				sqe := r.GetSQE()
				if sqe == nil {
					t.Fatal("GetSQE: queue full")
				}
				sqe.PrepNop(i<<8 | 7)
				cqe := waitCQE(t, r)
				if cqe.UserData != i<<8|7 || cqe.Res != 0 {
					t.Fatalf("CQE: got user_data %#x res %d, want %#x res 0", cqe.UserData, cqe.Res, i<<8|7)
				}
			}
		})
	}
}

func TestSQFull(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t, 0)
	for i := 0; i < int(r.SQEntries()); i++ {
		if r.GetSQE() == nil {
			t.Fatalf("GetSQE %d: got nil, want an SQE", i)
		}
	}
	if r.GetSQE() != nil {
		t.Fatal("GetSQE on a full queue: got an SQE, want nil")
	}
	n, err := r.Submit()
	if err != nil || n != int(r.SQEntries()) {
		t.Fatalf("Submit: got %d, %v; want %d", n, err, r.SQEntries())
	}
	if r.GetSQE() == nil {
		t.Fatal("GetSQE after Submit: got nil")
	}
}

func TestProbe(t *testing.T) {
	r := newRing(t, 0)
	ops, err := r.Probe()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []uint8{OpNop, OpAccept, OpRecv, OpSend, OpPollAdd, OpAsyncCancel} {
		if int(op) >= len(ops) || !ops[op] {
			t.Errorf("opcode %d: not reported as supported", op)
		}
	}
}

func TestBufRingIndexMath(t *testing.T) {
	// Exercise Add/Publish without a kernel consumer: the descriptor slot
	// is tail&mask and the published tail wraps at 65536.
	r := newRing(t, 0)
	b, err := r.RegisterBufRing(8, 64, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { r.UnregisterBufRing(b); b.Free() }()
	if b.Tail() != 8 {
		t.Fatalf("tail after registration: got %d, want 8", b.Tail())
	}
	for i := 0; i < 70000; i++ {
		b.Add(uint16(i % 8))
		b.Publish()
	}
	want := uint16((8 + 70000) % 65536)
	if b.Tail() != want {
		t.Fatalf("tail: got %d, want %d", b.Tail(), want)
	}
	published := uint16(readWord(b) >> b.shift)
	if published != want {
		t.Fatalf("published tail: got %d, want %d", published, want)
	}
}

func readWord(b *BufRing) uint32 {
	return uint32(b.ring[12]) | uint32(b.ring[13])<<8 | uint32(b.ring[14])<<16 | uint32(b.ring[15])<<24
}

// TestBufRingRecvWraparound drives a real multishot recv over a small
// buffer ring through more than 65536 buffer recycles, so the 16-bit tail
// wraps while the kernel consumes it.
func TestBufRingRecvWraparound(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t, SetupSingleIssuer|SetupDeferTaskrun)
	const entries, size = 4, 16
	b, err := r.RegisterBufRing(entries, size, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { r.UnregisterBufRing(b); b.Free() }()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	arm := func() {
		sqe := r.GetSQE()
		sqe.PrepRecvMultishot(fds[0], b.BGID(), 42)
	}
	arm()
	const rounds = 70000
	seen := make(map[uint16]int)
	for i := 0; i < rounds; i++ {
		msg := []byte{byte(i), byte(i >> 8)}
		if _, err := unix.Write(fds[1], msg); err != nil {
			t.Fatal(err)
		}
		cqe := waitCQE(t, r)
		if cqe.UserData != 42 || cqe.Res != 2 {
			t.Fatalf("round %d: got user_data %d res %d, want 42 and 2", i, cqe.UserData, cqe.Res)
		}
		bid, ok := cqe.BufferID()
		if !ok || uint32(bid) >= entries {
			t.Fatalf("round %d: buffer id %d ok=%v", i, bid, ok)
		}
		if got := b.Buf(bid, 2); got[0] != msg[0] || got[1] != msg[1] {
			t.Fatalf("round %d: got %v, want %v", i, got, msg)
		}
		seen[bid]++
		b.Add(bid)
		b.Publish()
		if !cqe.More() {
			arm()
		}
	}
	if len(seen) != entries {
		t.Errorf("buffers used: got %d distinct ids, want %d", len(seen), entries)
	}
	if b.Tail() != uint16((entries+rounds)%65536) {
		t.Errorf("tail: got %d", b.Tail())
	}
}

func TestBufRingEmptyENOBUFS(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t, SetupSingleIssuer|SetupDeferTaskrun)
	b, err := r.RegisterBufRing(1, 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { r.UnregisterBufRing(b); b.Free() }()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	r.GetSQE().PrepRecvMultishot(fds[0], b.BGID(), 1)
	unix.Write(fds[1], []byte("abc"))
	cqe := waitCQE(t, r)
	if cqe.Res != 3 {
		t.Fatalf("first recv: got res %d, want 3", cqe.Res)
	}
	// The only buffer is still ours: the next recv runs out of buffers.
	unix.Write(fds[1], []byte("def"))
	for cqe.More() {
		cqe = waitCQE(t, r)
	}
	if cqe.Res != -int32(unix.ENOBUFS) {
		t.Fatalf("recv without buffers: got res %d, want -ENOBUFS", cqe.Res)
	}
}

func TestSubmitAndWaitBatchIdle(t *testing.T) {
	// With nothing to complete, a batch wait must block (not return every
	// minWait); a completion must end it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t, SetupSingleIssuer|SetupDeferTaskrun)
	if r.Features()&FeatMinTimeout == 0 {
		testenv.Skip(t, "kernel without IORING_FEAT_MIN_TIMEOUT")
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	r.GetSQE().PrepPollMultishot(efd, unix.POLLIN, 9)
	waiting := make(chan struct{}) // closed just before the first wait
	var writing atomic.Bool        // set just before the eventfd write
	go func() {
		<-waiting
		// Leave the waiter idle for a while. A wait that blocks stays in
		// its first call however long this lasts (so the length cannot make
		// the test fail); one that polls returns every 20µs and runs up
		// the call count meanwhile, even on a busy machine.
		time.Sleep(100 * time.Millisecond)
		writing.Store(true)
		unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}()
	calls := 0
	for r.CQReady() == 0 {
		calls++
		if calls == 1 {
			close(waiting)
		}
		if _, err := r.SubmitAndWaitBatch(8, 20*time.Microsecond); err != nil && !IsTemporary(err) {
			t.Fatal(err)
		}
	}
	var cqes [1]CQE
	if n := r.PeekBatch(cqes[:]); n != 1 || cqes[0].UserData != 9 || cqes[0].Res&unix.POLLIN == 0 {
		t.Fatalf("completion: got %d, %+v; want the eventfd poll (user_data 9, POLLIN)", n, cqes[0])
	}
	if !writing.Load() {
		t.Error("the wait ended before the eventfd was written")
	}
	// One call, and one more for each EINTR (or other temporary error).
	if calls > 3 {
		t.Errorf("io_uring_enter calls while idle: got %d, want at most 3 (no polling)", calls)
	}
}
