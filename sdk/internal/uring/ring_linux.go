package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is one io_uring instance: its fd and the mmap'ed submission queue,
// completion queue and SQE array. It is not safe for concurrent use.
type Ring struct {
	fd       int
	enterFD  int    // fd or registered index passed to io_uring_enter
	enterReg uint32 // EnterRegisteredRing when enterFD is a registered index
	flags    uint32
	features uint32

	sqMem, cqMem, sqeMem []byte

	sqHead    *uint32
	sqTail    *uint32
	sqFlags   *uint32
	sqMask    uint32
	sqEntries uint32
	sqArray   []uint32 // nil with SetupNoSQArray
	sqes      []SQE

	// sqeTail counts SQEs handed out by GetSQE; sqeHead counts SQEs
	// published to the kernel by flush.
	sqeTail uint32
	sqeHead uint32

	cqHead    *uint32
	cqTail    *uint32
	cqMask    uint32
	cqEntries uint32
	cqes      []CQE

	waitTS  unix.Timespec
	waitArg geteventsArg
}

// New creates a ring with at least entries SQEs. p supplies the setup flags
// (and CQEntries with SetupCQSize); the kernel fills in the rest of it. The
// errors of io_uring_setup are returned wrapped, so errors.Is(err,
// unix.EPERM) (io_uring disabled, seccomp), unix.ENOSYS (no io_uring) and
// unix.EINVAL (unknown flag, old kernel) can be tested.
func New(entries uint32, p *Params) (*Ring, error) {
	if p == nil {
		p = &Params{}
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd), enterFD: int(fd), flags: p.Flags, features: p.Features}
	if err := r.mmap(p); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mmap(p *Params) error {
	sqSize := int(p.SQOff.Array) + int(p.SQEntries)*4
	if p.Flags&SetupNoSQArray != 0 {
		// Without the index array the ring ends after the flags/dropped words;
		// the kernel rounds the mapping anyway, one page is always enough here.
		sqSize = int(p.SQOff.Array)
		if sqSize == 0 {
			sqSize = int(p.SQOff.Dropped) + 4
		}
	}
	cqSize := int(p.CQOff.CQEs) + int(p.CQEntries)*int(unsafe.Sizeof(CQE{}))
	single := p.Features&FeatSingleMmap != 0
	if single && cqSize > sqSize {
		sqSize = cqSize
	}
	var err error
	r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap io_uring sq ring: %w", err)
	}
	if single {
		r.cqMem = r.sqMem
	} else {
		r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return fmt.Errorf("mmap io_uring cq ring: %w", err)
		}
	}
	sqeSize := int(p.SQEntries) * int(unsafe.Sizeof(SQE{}))
	r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("mmap io_uring sqes: %w", err)
	}

	r.sqHead = (*uint32)(unsafe.Pointer(&r.sqMem[p.SQOff.Head]))
	r.sqTail = (*uint32)(unsafe.Pointer(&r.sqMem[p.SQOff.Tail]))
	r.sqFlags = (*uint32)(unsafe.Pointer(&r.sqMem[p.SQOff.Flags]))
	r.sqMask = *(*uint32)(unsafe.Pointer(&r.sqMem[p.SQOff.RingMask]))
	r.sqEntries = *(*uint32)(unsafe.Pointer(&r.sqMem[p.SQOff.RingEntries]))
	if p.Flags&SetupNoSQArray == 0 {
		r.sqArray = unsafe.Slice((*uint32)(unsafe.Pointer(&r.sqMem[p.SQOff.Array])), r.sqEntries)
		// The index array is the identity map: SQE i is always slot i.
		for i := range r.sqArray {
			r.sqArray[i] = uint32(i)
		}
	}
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), p.SQEntries)

	r.cqHead = (*uint32)(unsafe.Pointer(&r.cqMem[p.CQOff.Head]))
	r.cqTail = (*uint32)(unsafe.Pointer(&r.cqMem[p.CQOff.Tail]))
	r.cqMask = *(*uint32)(unsafe.Pointer(&r.cqMem[p.CQOff.RingMask]))
	r.cqEntries = *(*uint32)(unsafe.Pointer(&r.cqMem[p.CQOff.RingEntries]))
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&r.cqMem[p.CQOff.CQEs])), r.cqEntries)
	return nil
}

// Close unmaps the queues and closes the ring fd. The kernel cancels
// requests still in flight; callers must make sure none of them still uses
// memory that is about to be freed (wait for their completions first).
func (r *Ring) Close() error {
	var first error
	if r.sqeMem != nil {
		if err := unix.Munmap(r.sqeMem); err != nil && first == nil {
			first = err
		}
		r.sqeMem = nil
	}
	if r.cqMem != nil && (len(r.sqMem) == 0 || &r.cqMem[0] != &r.sqMem[0]) {
		if err := unix.Munmap(r.cqMem); err != nil && first == nil {
			first = err
		}
	}
	r.cqMem = nil
	if r.sqMem != nil {
		if err := unix.Munmap(r.sqMem); err != nil && first == nil {
			first = err
		}
		r.sqMem = nil
	}
	r.sqes, r.cqes, r.sqArray = nil, nil, nil
	if r.fd >= 0 {
		if err := unix.Close(r.fd); err != nil && first == nil {
			first = err
		}
		r.fd = -1
	}
	return first
}

// FD returns the ring's file descriptor.
func (r *Ring) FD() int { return r.fd }

// Flags returns the setup flags the ring was created with.
func (r *Ring) Flags() uint32 { return r.flags }

// Features returns the feature flags reported by the kernel.
func (r *Ring) Features() uint32 { return r.features }

// SQEntries returns the size of the submission queue.
func (r *Ring) SQEntries() uint32 { return r.sqEntries }

// CQEntries returns the size of the completion queue.
func (r *Ring) CQEntries() uint32 { return r.cqEntries }

// GetSQE returns the next free SQE, zeroed, or nil when the submission queue
// is full (submit, then try again). The SQE is published by the next Submit.
func (r *Ring) GetSQE() *SQE {
	head := atomic.LoadUint32(r.sqHead)
	if r.sqeTail-head >= r.sqEntries {
		return nil
	}
	sqe := &r.sqes[r.sqeTail&r.sqMask]
	*sqe = SQE{}
	r.sqeTail++
	return sqe
}

// Pending returns the number of SQEs prepared but not yet submitted.
func (r *Ring) Pending() uint32 { return r.sqeTail - r.sqeHead }

// flush publishes prepared SQEs to the kernel and returns how many are
// waiting in the SQ.
func (r *Ring) flush() uint32 {
	if r.sqeTail != r.sqeHead {
		r.sqeHead = r.sqeTail
		atomic.StoreUint32(r.sqTail, r.sqeTail)
	}
	return r.sqeTail - atomic.LoadUint32(r.sqHead)
}

// Submit hands prepared SQEs to the kernel without waiting and returns how
// many were consumed.
func (r *Ring) Submit() (int, error) {
	return r.SubmitAndWait(0)
}

// SubmitAndWait submits prepared SQEs and waits until at least waitNr
// completions are available. With waitNr 0 it does not block; it still runs
// deferred task work (IORING_SETUP_DEFER_TASKRUN) when getEvents is implied
// by a non-zero waitNr or by the ring's setup. EINTR is returned as is so
// the caller can decide to retry.
func (r *Ring) SubmitAndWait(waitNr uint32) (int, error) {
	n := r.flush()
	var flags uint32
	if waitNr > 0 || r.flags&SetupDeferTaskrun != 0 {
		flags |= EnterGetEvents
	}
	return r.Enter(n, waitNr, flags)
}

// Enter calls io_uring_enter with the given counts and flags.
func (r *Ring) Enter(toSubmit, minComplete, flags uint32) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.enterFD), uintptr(toSubmit), uintptr(minComplete), uintptr(flags|r.enterReg), 0, 0)
	if errno != 0 {
		return int(n), errno
	}
	return int(n), nil
}

// SubmitAndWaitBatch submits prepared SQEs and waits for waitNr
// completions, but returns as soon as minWait has passed with at least one
// completion available (IORING_FEAT_MIN_TIMEOUT, Linux 6.12); after
// minWait without any completion it returns on the first one. Without the
// feature it behaves as SubmitAndWait(1). It lets a busy loop gather
// completions into larger batches without delaying an idle one. A return
// of ETIME (the far-away overall timeout) is reported as success.
func (r *Ring) SubmitAndWaitBatch(waitNr uint32, minWait time.Duration) (int, error) {
	if r.features&FeatMinTimeout == 0 || waitNr <= 1 || minWait <= 0 {
		return r.SubmitAndWait(1)
	}
	n := r.flush()
	// Without an overall timeout the kernel treats minWait as the timeout
	// and would return empty-handed every minWait: give it one far away.
	// Both live in the (heap-allocated) Ring while the kernel reads them.
	r.waitTS = unix.Timespec{Sec: 3600}
	r.waitArg = geteventsArg{
		MinWaitUsec: uint32(minWait / time.Microsecond),
		TS:          uint64(uintptr(unsafe.Pointer(&r.waitTS))),
	}
	ret, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.enterFD), uintptr(n), uintptr(waitNr),
		uintptr(EnterGetEvents|EnterExtArg|r.enterReg), uintptr(unsafe.Pointer(&r.waitArg)), unsafe.Sizeof(r.waitArg))
	if errno == unix.ETIME {
		return int(ret), nil
	}
	if errno != 0 {
		return int(ret), errno
	}
	return int(ret), nil
}

// CQReady returns the number of completions waiting in the CQ.
func (r *Ring) CQReady() uint32 {
	return atomic.LoadUint32(r.cqTail) - *r.cqHead
}

// PeekBatch copies up to len(dst) completions into dst, marks them seen and
// returns how many were copied. It never blocks and makes no system call.
func (r *Ring) PeekBatch(dst []CQE) int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	n := int(tail - head)
	if n > len(dst) {
		n = len(dst)
	}
	for i := 0; i < n; i++ {
		dst[i] = r.cqes[(head+uint32(i))&r.cqMask]
	}
	if n > 0 {
		atomic.StoreUint32(r.cqHead, head+uint32(n))
	}
	return n
}

// SQFlags returns the SQ ring's flags word (SQCQOverflow, SQTaskrun, ...).
func (r *Ring) SQFlags() uint32 { return atomic.LoadUint32(r.sqFlags) }

// RegisterRingFD registers the ring fd with itself so that io_uring_enter
// skips the fd lookup (IORING_REGISTER_RING_FDS). It is an optimization: an
// error leaves the ring usable as before.
func (r *Ring) RegisterRingFD() error {
	up := rsrcUpdate{Offset: ^uint32(0), Data: uint64(r.fd)}
	_, err := r.register(registerRingFDs, unsafe.Pointer(&up), 1)
	if err != nil {
		return err
	}
	r.enterFD = int(up.Offset)
	r.enterReg = EnterRegisteredRing
	return nil
}

func (r *Ring) register(op uintptr, arg unsafe.Pointer, nr uintptr) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), op, uintptr(arg), nr, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// Probe returns, for each opcode up to the kernel's last one, whether the
// kernel supports it (IORING_REGISTER_PROBE).
func (r *Ring) Probe() ([]bool, error) {
	const nops = 256
	mem := make([]byte, int(unsafe.Sizeof(probeHdr{}))+nops*int(unsafe.Sizeof(probeOp{})))
	if _, err := r.register(registerProbe, unsafe.Pointer(&mem[0]), nops); err != nil {
		return nil, fmt.Errorf("io_uring probe: %w", err)
	}
	hdr := (*probeHdr)(unsafe.Pointer(&mem[0]))
	ops := unsafe.Slice((*probeOp)(unsafe.Pointer(&mem[unsafe.Sizeof(probeHdr{})])), nops)
	out := make([]bool, int(hdr.LastOp)+1)
	for i := 0; i < int(hdr.OpsLen) && i < nops; i++ {
		if int(ops[i].Op) < len(out) {
			out[ops[i].Op] = ops[i].Flags&probeOpSupported != 0
		}
	}
	return out, nil
}

// IsTemporary reports whether err from Enter means "try again" (EINTR,
// EAGAIN, EBUSY: interrupted, or the CQ is full and must be drained first).
func IsTemporary(err error) bool {
	return errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EBUSY)
}

// PrepNop prepares a no-op.
func (s *SQE) PrepNop(userData uint64) {
	s.Opcode = OpNop
	s.FD = -1
	s.UserData = userData
}

// PrepAcceptMultishot prepares a multishot accept on listening socket fd;
// flags are accept4 flags (SOCK_NONBLOCK, SOCK_CLOEXEC). Each CQE carries a
// new fd in Res; without CQEFMore the request has ended and must be re-armed.
func (s *SQE) PrepAcceptMultishot(fd int, flags uint32, userData uint64) {
	s.Opcode = OpAccept
	s.FD = int32(fd)
	s.IOPrio = AcceptMultishot
	s.OpFlags = flags
	s.UserData = userData
}

// PrepRecvMultishot prepares a multishot recv on fd that picks buffers from
// buffer group bgid. Each CQE carries the byte count (0 = end of stream) and
// the buffer id in its flags.
func (s *SQE) PrepRecvMultishot(fd int, bgid uint16, userData uint64) {
	s.Opcode = OpRecv
	s.FD = int32(fd)
	s.IOPrio = RecvMultishot
	s.Flags = SQEBufferSelect
	s.BufIndex = bgid
	s.UserData = userData
}

// PrepSend prepares a send of b on fd. b must stay referenced by the caller
// until the completion arrives; the kernel reads it asynchronously.
func (s *SQE) PrepSend(fd int, b []byte, msgFlags uint32, userData uint64) {
	s.Opcode = OpSend
	s.FD = int32(fd)
	if len(b) > 0 {
		s.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	}
	s.Len = uint32(len(b))
	s.OpFlags = msgFlags
	s.UserData = userData
}

// PrepPollMultishot prepares a multishot poll for events (POLLIN, ...) on fd.
func (s *SQE) PrepPollMultishot(fd int, events uint32, userData uint64) {
	s.Opcode = OpPollAdd
	s.FD = int32(fd)
	s.Len = PollAddMulti
	s.OpFlags = events
	s.UserData = userData
}

// PrepCancel prepares the cancellation of the request(s) whose user_data is
// target; flags may add CancelAll.
func (s *SQE) PrepCancel(target uint64, flags uint32, userData uint64) {
	s.Opcode = OpAsyncCancel
	s.FD = -1
	s.Addr = target
	s.OpFlags = flags
	s.UserData = userData
}

// PrepTimeout prepares a timeout that completes with -ETIME after ts. The
// kernel copies ts when the SQE is submitted.
func (s *SQE) PrepTimeout(ts *unix.Timespec, userData uint64) {
	s.Opcode = OpTimeout
	s.FD = -1
	s.Addr = uint64(uintptr(unsafe.Pointer(ts)))
	s.Len = 1
	s.UserData = userData
}
