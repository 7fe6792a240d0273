//go:build linux

package server

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/sdk/internal/uring"
)

// Ring geometry of one event loop (the SQ size is config.sqEntries; the CQ
// is eight times larger).
const (
	bufEntries = 512     // provided receive buffers per loop
	bufSize    = 8 << 10 // bytes per receive buffer
	bufGroup   = 0
	cqeBatch   = 512
	// acceptRetry is the pause before re-arming accept after it failed
	// (EMFILE, ENFILE, ENOMEM), so a full fd table does not spin the loop.
	acceptRetry = 50 * time.Millisecond
	// maxBatchWait caps the completions a loop waits for in a batch wait.
	maxBatchWait = 32
	// yieldEvery is how often a busy loop passes through the Go scheduler.
	yieldEvery = 2 * time.Millisecond
)

// ringFlags are the setup flags every loop ring uses: one issuer thread,
// completions processed only when that thread asks (no IPIs, no task-work
// interrupts), and submission of every SQE even when one fails.
const ringFlags = uring.SetupSingleIssuer | uring.SetupDeferTaskrun | uring.SetupSubmitAll | uring.SetupCQSize

// user_data layout: op (8 bits) | generation (24 bits) | slot (32 bits).
// It carries ids only, never Go pointers.
const (
	opAccept uint64 = iota + 1
	opRecv
	opSend
	opWake
	opCancel
	opTimeout
)

func userData(op uint64, slot, gen uint32) uint64 {
	return op<<56 | uint64(gen&0xffffff)<<32 | uint64(slot)
}

// uringConn is the io_uring engine's per-connection state, owned by the
// connection's loop goroutine.
type uringConn struct {
	l         *loop
	fd        int
	slot, gen uint32
	state     int      // connOpen, connClosing, connShut
	recvArmed bool     // a multishot recv is in flight
	paused    bool     // reading stopped until the send queue drains
	sending   bool     // a send is in flight; outs is referenced until its CQE
	dead      bool     // fd closed, slot freed
	outs      [][]byte // chunks taken from the queue, sent in order
	outIdx    int      // chunk being sent
	off       int      // bytes of outs[outIdx] already sent
	spare     [][]byte // emptied chunk list, reused by the next take
	split     splitter
	emit      func([]byte) bool
	// localOn: the loop's own Sends append to c.pending without c.mu
	// (Conn.sendOwned) until flushLocal; localBytes counts them and qBase
	// is c.queued when localOn was set.
	localOn           bool
	localBytes, qBase int
}

const (
	connOpen    = iota
	connClosing // flush queued output, then shut down
	connShut    // shutdown(2) called; waiting for recv and send to end
)

// uringEngine runs one loop per configured loop count, each with its own
// ring, buffer ring, eventfd and SO_REUSEPORT listener.
type uringEngine struct {
	srv   *Server
	fds   []int
	loops []*loop
	wg    sync.WaitGroup
	// procs is the GOMAXPROCS value set by start, and prevProcs the value it
	// replaced (0 when start left GOMAXPROCS alone).
	procs, prevProcs int
}

// newURingEngine checks that io_uring can serve here and binds the
// listeners. Errors wrap ErrEngineUnavailable when io_uring is the problem.
// With inherited (a listening socket passed by systemd) the loops share
// duplicates of it instead of binding; inherited is consumed, except when
// the error wraps ErrEngineUnavailable (the net engine may then take it).
func newURingEngine(s *Server, addr string, inherited *os.File) (engine, net.Addr, error) {
	if err := probeURing(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrEngineUnavailable, err)
	}
	if inherited != nil {
		fds, err := inheritedFDs(inherited, s.cfg.loops)
		if err != nil {
			return nil, nil, fmt.Errorf("listen %s: inherited socket: %w", addr, err)
		}
		sa, err := unix.Getsockname(fds[0])
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, nil, fmt.Errorf("listen %s: %w", addr, os.NewSyscallError("getsockname", err))
		}
		return &uringEngine{srv: s, fds: fds}, sockaddrToTCP(sa), nil
	}
	fds, bound, err := listenLoops(addr, s.cfg.loops, s.cfg.reusePort)
	if err != nil {
		return nil, nil, err
	}
	return &uringEngine{srv: s, fds: fds}, bound, nil
}

// probeURing creates and closes a ring with everything the engine needs:
// the setup flags (kernel 6.1+), the opcodes, and a provided buffer ring.
// io_uring_disabled, seccomp filters and old kernels all fail here.
func probeURing() error {
	// The ring is SINGLE_ISSUER: every call on it must come from the thread
	// that created it, or io_uring_register fails with EEXIST.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := uring.New(4, &uring.Params{Flags: ringFlags, CQEntries: 8})
	if err != nil {
		return err
	}
	defer r.Close()
	ops, err := r.Probe()
	if err != nil {
		return err
	}
	for _, op := range []uint8{uring.OpAccept, uring.OpRecv, uring.OpSend, uring.OpPollAdd, uring.OpAsyncCancel, uring.OpTimeout} {
		if int(op) >= len(ops) || !ops[op] {
			return fmt.Errorf("io_uring opcode %d not supported", op)
		}
	}
	br, err := r.RegisterBufRing(1, 64, 0)
	if err != nil {
		return err
	}
	_ = r.UnregisterBufRing(br)
	br.Free()
	return nil
}

func (e *uringEngine) name() Engine { return EngineURing }

func (e *uringEngine) closeListeners() {
	for i, fd := range e.fds {
		if fd >= 0 {
			unix.Close(fd)
			e.fds[i] = -1
		}
	}
}

// fallback hands the listeners to a net engine (all of them: closing one
// of a SO_REUSEPORT group would reset the connections in its queue).
func (e *uringEngine) fallback() (engine, error) {
	var lns []net.Listener
	var ferr error
	for i, fd := range e.fds {
		f := os.NewFile(uintptr(fd), "listener")
		ln, err := net.FileListener(f) // dups fd
		f.Close()
		e.fds[i] = -1
		if err != nil && ferr == nil {
			ferr = fmt.Errorf("listen %s: %w", e.srv.addr, err)
		}
		if err == nil {
			lns = append(lns, ln)
		}
	}
	if ferr != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return nil, ferr
	}
	ne, _, err := newNetEngine(e.srv, "", lns)
	return ne, err
}

func (e *uringEngine) start(h handlers) error {
	ready := make(chan error, len(e.fds))
	for i, fd := range e.fds {
		l := &loop{e: e, srv: e.srv, h: h, idx: i, lfd: fd, efd: -1, goCh: make(chan bool, 1)}
		e.loops = append(e.loops, l)
		e.wg.Add(1)
		go l.run(ready)
	}
	var first error
	for range e.loops {
		if err := <-ready; err != nil && first == nil {
			first = err
		}
	}
	for _, l := range e.loops {
		l.goCh <- first == nil
	}
	if first != nil {
		e.wg.Wait()
		e.loops = nil
		return first
	}
	if want := len(e.loops) + 1; e.srv.cfg.raiseProcs && runtime.GOMAXPROCS(0) < want {
		e.prevProcs = runtime.GOMAXPROCS(want)
		e.procs = want
	}
	return nil
}

func (e *uringEngine) wait() {
	e.wg.Wait()
	if e.prevProcs > 0 && runtime.GOMAXPROCS(0) == e.procs {
		runtime.GOMAXPROCS(e.prevProcs)
	}
}

func (e *uringEngine) stop() {
	for _, l := range e.loops {
		l.command(cmdStop)
	}
}

func (e *uringEngine) abortAll() {
	for _, l := range e.loops {
		l.command(cmdAbort)
	}
}

func (e *uringEngine) kick(c *Conn, abort, enqueue bool) {
	if enqueue {
		c.u.l.enqueue(c)
	}
}

// Commands sent to a loop.
const (
	cmdStop  = 1 << 0
	cmdAbort = 1 << 1
)

// loop is one event loop: a goroutine locked to its OS thread that alone
// touches its ring, buffer ring and connections.
type loop struct {
	e    *uringEngine
	srv  *Server
	h    handlers
	idx  int
	lfd  int
	efd  int
	goCh chan bool

	// Owned by the loop goroutine.
	ring         *uring.Ring
	br           *uring.BufRing
	slots        []*Conn
	gens         []uint32
	free         []uint32
	nconns       int
	acceptArmed  bool
	timeoutArmed bool
	stopping     bool
	recycled     bool
	cqes         []uring.CQE
	stash        []uring.CQE // completions set aside by getSQE, see there
	work         []*Conn
	efdBuf       [8]byte
	retryTS      unix.Timespec
	g            uintptr // curg() of the loop goroutine
	dirty        []*Conn // connections with localOn set
	kicks        []*Conn // connections flushLocal kicked, for flushWork

	mu       sync.Mutex // guards the fields below
	queue    []*Conn    // connections kicked from any goroutine
	cmds     int
	sleeping bool // blocked in io_uring_enter, needs an eventfd write
	exited   bool // efd is closed: never write to it again
}

// enqueue hands c to the loop and wakes it if it sleeps.
func (l *loop) enqueue(c *Conn) {
	l.mu.Lock()
	if l.exited {
		l.mu.Unlock()
		return
	}
	l.queue = append(l.queue, c)
	l.wakeLocked()
	l.mu.Unlock()
}

func (l *loop) command(cmd int) {
	l.mu.Lock()
	if !l.exited {
		l.cmds |= cmd
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// wakeLocked writes the eventfd if the loop sleeps. l.mu must be held, so
// the eventfd cannot be closed meanwhile.
func (l *loop) wakeLocked() {
	if l.sleeping {
		l.sleeping = false
		one := [8]byte{1}
		for {
			_, err := unix.Write(l.efd, one[:])
			if err != unix.EINTR {
				break
			}
		}
	}
}

func (l *loop) setup() error {
	if err := l.srv.cfg.testRingFailure; err != nil {
		return err
	}
	var err error
	sq := l.srv.cfg.sqEntries
	l.ring, err = uring.New(sq, &uring.Params{Flags: ringFlags, CQEntries: max(8*sq, 64)})
	if err != nil {
		return err
	}
	_ = l.ring.RegisterRingFD() // optional: saves an fd lookup per enter
	l.br, err = l.ring.RegisterBufRing(bufEntries, bufSize, bufGroup)
	if err != nil {
		l.ring.Close()
		return err
	}
	l.efd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		l.teardownRing()
		return fmt.Errorf("eventfd: %w", err)
	}
	l.cqes = make([]uring.CQE, cqeBatch)
	return nil
}

func (l *loop) teardownRing() {
	if l.br != nil {
		_ = l.ring.UnregisterBufRing(l.br)
	}
	l.ring.Close()
	if l.br != nil {
		l.br.Free()
	}
	if l.efd >= 0 {
		unix.Close(l.efd)
	}
}

func (l *loop) run(ready chan<- error) {
	defer l.e.wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l.g = curg()
	if err := l.setup(); err != nil {
		ready <- fmt.Errorf("io_uring loop %d: %w", l.idx, err)
		<-l.goCh
		return
	}
	ready <- nil
	if !<-l.goCh {
		// Another loop failed: leave the listener for the fallback engine.
		l.mu.Lock()
		l.exited = true
		l.mu.Unlock()
		l.teardownRing()
		return
	}
	l.armAccept()
	l.armWake()
	lastYield := time.Now()
	for !(l.stopping && l.nconns == 0 && !l.acceptArmed && !l.timeoutArmed) {
		// A goroutine that never goes through the scheduler looks stuck to
		// the runtime's monitor, which then preempts it with signals
		// (interrupting io_uring_enter) and takes its P away on every
		// wait. Yielding every few milliseconds keeps it quiet.
		if now := time.Now(); now.Sub(lastYield) > yieldEvery {
			runtime.Gosched()
			lastYield = now
		}
		l.wait()
		l.reap()
		l.drainQueue()
		l.flushDirty()
		l.flushWork()
	}
	l.mu.Lock()
	l.exited = true
	l.mu.Unlock()
	if l.lfd >= 0 {
		unix.Close(l.lfd)
		l.lfd = -1
	}
	l.teardownRing()
}

// wait submits prepared SQEs and blocks for at least one completion unless
// there is queued work.
func (l *loop) wait() {
	if l.recycled {
		l.br.Publish()
		l.recycled = false
	}
	var n uint32 = 1
	if l.ring.CQReady() > 0 || len(l.kicks) > 0 || len(l.dirty) > 0 {
		n = 0
	} else {
		l.mu.Lock()
		if len(l.queue) > 0 || l.cmds != 0 {
			n = 0
		} else {
			l.sleeping = true
		}
		l.mu.Unlock()
	}
	var err error
	if n == 1 && l.nconns > 1 && l.srv.cfg.batchWait > 0 {
		// Several connections: let completions gather for up to
		// batchWait once the first one is there (see WithBatchWait).
		_, err = l.ring.SubmitAndWaitBatch(uint32(min(l.nconns, maxBatchWait)), l.srv.cfg.batchWait)
	} else {
		_, err = l.ring.SubmitAndWait(n)
	}
	if n == 1 {
		l.mu.Lock()
		l.sleeping = false
		l.mu.Unlock()
	}
	if err != nil && !uring.IsTemporary(err) {
		// Only EBADF/EFAULT/EINVAL-class bugs land here; do not spin.
		l.srv.log.Error("io_uring_enter failed", "err", err)
		time.Sleep(time.Millisecond)
	}
}

// getSQE returns a free SQE. When the SQ is full it submits; if the kernel
// cannot take the SQEs (its CQ is backed up) completions are moved aside to
// l.stash, to be processed in order by reap, instead of being handled here:
// getSQE runs inside completion handlers, which must not be re-entered.
func (l *loop) getSQE() *uring.SQE {
	for {
		if sqe := l.ring.GetSQE(); sqe != nil {
			return sqe
		}
		if _, err := l.ring.Submit(); err != nil && !uring.IsTemporary(err) {
			l.srv.log.Error("io_uring submit failed", "err", err)
		}
		if sqe := l.ring.GetSQE(); sqe != nil {
			return sqe
		}
		var tmp [64]uring.CQE
		n := l.ring.PeekBatch(tmp[:])
		l.stash = append(l.stash, tmp[:n]...)
		if n == 0 {
			// Nothing posted yet: let the kernel flush its overflow list
			// and run deferred work.
			_, _ = l.ring.Enter(0, 0, uring.EnterGetEvents)
		}
	}
}

func (l *loop) armAccept() {
	l.getSQE().PrepAcceptMultishot(l.lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, userData(opAccept, 0, 0))
	l.acceptArmed = true
}

func (l *loop) armWake() {
	l.getSQE().PrepPollMultishot(l.efd, unix.POLLIN, userData(opWake, 0, 0))
}

func (l *loop) reap() {
	for {
		n := l.ring.PeekBatch(l.cqes)
		for i := 0; i < n; i++ {
			l.complete(&l.cqes[i])
		}
		for len(l.stash) > 0 {
			st := l.stash
			l.stash = nil
			for i := range st {
				l.complete(&st[i])
			}
		}
		if n < len(l.cqes) {
			return
		}
	}
}

func (l *loop) complete(cqe *uring.CQE) {
	ud := cqe.UserData
	switch ud >> 56 {
	case opAccept:
		l.onAccept(cqe)
	case opRecv:
		if c := l.lookup(ud); c != nil {
			l.onRecv(c, cqe)
		} else if bid, ok := cqe.BufferID(); ok {
			l.br.Add(bid)
			l.recycled = true
		}
	case opSend:
		if c := l.lookup(ud); c != nil {
			l.onSend(c, cqe)
		}
	case opWake:
		for {
			_, err := unix.Read(l.efd, l.efdBuf[:])
			if err != unix.EINTR {
				break
			}
		}
		if !cqe.More() {
			l.armWake()
		}
	case opTimeout:
		l.timeoutArmed = false
		if !l.stopping {
			l.armAccept()
		}
	case opCancel:
	}
	l.flushDirty()
}

func (l *loop) lookup(ud uint64) *Conn {
	slot := uint32(ud)
	if int(slot) >= len(l.slots) {
		return nil
	}
	c := l.slots[slot]
	if c == nil || c.u.gen != uint32(ud>>32)&0xffffff {
		return nil
	}
	return c
}

func (l *loop) onAccept(cqe *uring.CQE) {
	if !cqe.More() {
		l.acceptArmed = false
	}
	if cqe.Res >= 0 {
		fd := int(cqe.Res)
		if l.stopping {
			unix.Close(fd)
		} else {
			l.newConn(fd)
		}
	} else if err := unix.Errno(-cqe.Res); !cqe.More() && !l.stopping {
		// EMFILE, ENFILE, ENOMEM, ...: retry after a pause instead of
		// spinning on an error that persists.
		l.srv.log.Error("accept failed, retrying", "port", l.srv.Port(), "err", err)
		l.retryTS = unix.NsecToTimespec(int64(acceptRetry))
		l.getSQE().PrepTimeout(&l.retryTS, userData(opTimeout, 0, 0))
		l.timeoutArmed = true
		return
	}
	if !l.acceptArmed {
		if l.stopping {
			if l.lfd >= 0 {
				unix.Close(l.lfd)
				l.lfd = -1
			}
		} else {
			l.armAccept()
		}
	}
}

func (l *loop) newConn(fd int) {
	var remote net.Addr
	if sa, err := unix.Getpeername(fd); err == nil {
		if ta := sockaddrToTCP(sa); ta != nil {
			remote = ta
		}
	}
	c := l.srv.newConn(l.e, remote)
	var slot uint32
	if n := len(l.free); n > 0 {
		slot = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		slot = uint32(len(l.slots))
		l.slots = append(l.slots, nil)
		l.gens = append(l.gens, 0)
	}
	l.gens[slot]++
	l.slots[slot] = c
	c.u = uringConn{l: l, fd: fd, slot: slot, gen: l.gens[slot] & 0xffffff}
	c.u.split.max = l.srv.cfg.maxMessage
	msg := l.h.rawMessage
	c.u.emit = func(m []byte) bool {
		msg(c, m)
		return !c.stopped.Load()
	}
	c.loopG.Store(l.g)
	l.nconns++
	l.srv.addConn(c)
	l.armRecv(c)
	l.h.connect(c)
}

func (l *loop) armRecv(c *Conn) {
	l.getSQE().PrepRecvMultishot(c.u.fd, bufGroup, userData(opRecv, c.u.slot, c.u.gen))
	c.u.recvArmed = true
}

func (l *loop) onRecv(c *Conn, cqe *uring.CQE) {
	more := cqe.More()
	if !more {
		c.u.recvArmed = false
	}
	if cqe.Res > 0 {
		bid, _ := cqe.BufferID()
		if c.u.state == connOpen && !c.stopped.Load() {
			l.deliver(c, l.br.Buf(bid, int(cqe.Res)))
			l.flushDirty() // before reading c.queued below
		}
		l.br.Add(bid)
		l.recycled = true
		if c.u.state == connOpen && !c.u.paused {
			c.mu.Lock()
			queued := c.queued
			c.mu.Unlock()
			if queued > l.srv.pauseHigh {
				l.pauseRecv(c)
			}
		}
		if !more && c.u.state != connShut && !c.u.paused {
			l.armRecv(c)
		}
		l.maybeFinish(c) // a callback may have closed c
		return
	}
	if bid, ok := cqe.BufferID(); ok {
		l.br.Add(bid)
		l.recycled = true
	}
	switch {
	case cqe.Res == -int32(unix.ECANCELED):
		// Paused for flow control, or shut: re-arm only if resumed meanwhile.
		if !more && c.u.state != connShut && !c.u.paused {
			l.armRecv(c)
		}
	case cqe.Res == -int32(unix.ENOBUFS) && c.u.state != connShut:
		// Buffer ring ran dry: buffers come back as this batch is
		// processed; publish them and re-arm.
		if !more && !c.u.paused {
			l.br.Publish()
			l.recycled = false
			l.armRecv(c)
		}
	case cqe.Res == -int32(unix.EINTR) || cqe.Res == -int32(unix.EAGAIN):
		if !more && c.u.state != connShut && !c.u.paused {
			l.armRecv(c)
		}
	case cqe.Res == 0:
		// End of stream: deliver a final unterminated line, flush what is
		// queued, then close.
		if c.u.state == connOpen && !c.stopped.Load() && l.srv.cfg.framing == Lines {
			if last := c.u.split.rest(); last != nil && !l.srv.cfg.dropUnterm {
				c.unterm.Store(true)
				l.h.message(c, last)
			}
		}
		l.beginClose(c)
	default:
		// ECONNRESET, ETIMEDOUT, ...: nothing more can be written.
		l.abortConn(c)
	}
	l.maybeFinish(c)
}

// pauseRecv stops reading from c until its send queue drains: the
// multishot recv is cancelled and re-armed by onSend.
func (l *loop) pauseRecv(c *Conn) {
	c.u.paused = true
	if f := l.srv.cfg.testOnPause; f != nil {
		f(c)
	}
	if c.u.recvArmed {
		l.getSQE().PrepCancel(userData(opRecv, c.u.slot, c.u.gen), 0, userData(opCancel, 0, 0))
	}
}

// deliver passes the messages in data to OnMessage. With panic recovery
// on, one deferred recover covers the whole batch instead of one per
// message: a panic closes c at once, so no later message of the batch
// would have been delivered anyway.
func (l *loop) deliver(c *Conn, data []byte) {
	if l.h.recover {
		defer l.srv.recoverCallback(c, "OnMessage")
	}
	if l.srv.cfg.framing == Raw {
		l.h.rawMessage(c, data)
		return
	}
	if err := c.u.split.feed(data, c.u.emit); err != nil {
		l.srv.log.Warn("message too large, closing connection",
			"conn", c.id, "remote", addrString(c.remote), "limit", l.srv.cfg.maxMessage)
		l.abortConn(c)
	}
}

// beginClose moves c to connClosing: Sends stop, queued output is flushed,
// then the socket is shut down.
func (l *loop) beginClose(c *Conn) {
	if c.u.state != connOpen {
		return
	}
	c.markClosing()
	c.u.state = connClosing
	l.pushSend(c)
	if !c.u.sending {
		l.shut(c)
	}
}

// abortConn drops queued output and shuts the socket down at once.
func (l *loop) abortConn(c *Conn) {
	l.flushLocal(c)
	c.mu.Lock()
	c.closing, c.abort = true, true
	c.pending = nil
	c.mu.Unlock()
	c.stopped.Store(true)
	l.shut(c)
}

// shut calls shutdown(2), which ends the multishot recv and fails a send
// blocked on a full socket buffer.
func (l *loop) shut(c *Conn) {
	if c.u.state == connShut {
		return
	}
	c.u.state = connShut
	c.markClosing()
	c.u.split.reset()
	if c.u.recvArmed || c.u.sending {
		// shutdown(2) fails a send waiting for buffer space and sends the
		// FIN now; with nothing armed, close(2) in maybeFinish does both.
		_ = unix.Shutdown(c.u.fd, unix.SHUT_RDWR)
	}
	if c.u.recvArmed {
		// A peer that keeps sending keeps a multishot recv alive even after
		// shutdown(2): cancel it.
		l.getSQE().PrepCancel(userData(opRecv, c.u.slot, c.u.gen), 0, userData(opCancel, 0, 0))
	}
}

// maybeFinish closes c once it is shut and no request references it.
func (l *loop) maybeFinish(c *Conn) {
	if c.u.dead || c.u.state != connShut || c.u.recvArmed || c.u.sending {
		return
	}
	l.flushLocal(c)
	c.loopG.Store(0)
	c.u.dead = true
	unix.Close(c.u.fd)
	l.slots[c.u.slot] = nil
	l.free = append(l.free, c.u.slot)
	l.nconns--
	c.u.outs, c.u.spare = nil, nil
	c.mu.Lock()
	c.pending = nil
	c.queued = 0
	c.mu.Unlock()
	l.srv.removeConn(c)
	l.h.disconnect(c)
}

// pushSend starts sending the queued chunks when no send is in flight.
func (l *loop) pushSend(c *Conn) {
	if c.u.sending || c.u.state == connShut {
		return
	}
	l.flushLocal(c)
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return
	}
	c.u.outs = c.takePendingLocked(c.u.spare)
	c.mu.Unlock()
	c.u.spare = nil
	c.u.outIdx, c.u.off = 0, 0
	c.u.sending = true
	l.prepSend(c)
}

func (l *loop) prepSend(c *Conn) {
	b := c.u.outs[c.u.outIdx][c.u.off:]
	l.getSQE().PrepSend(c.u.fd, b, unix.MSG_NOSIGNAL, userData(opSend, c.u.slot, c.u.gen))
}

// dropOuts releases the chunk list after its last completion.
func (l *loop) dropOuts(c *Conn) {
	for i, b := range c.u.outs {
		l.srv.putChunk(b)
		c.u.outs[i] = nil
	}
	c.u.spare = c.u.outs[:0]
	c.u.outs = nil
	c.u.sending = false
}

func (l *loop) onSend(c *Conn, cqe *uring.CQE) {
	if cqe.Res < 0 {
		if (cqe.Res == -int32(unix.EAGAIN) || cqe.Res == -int32(unix.EINTR)) && c.u.state != connShut {
			l.prepSend(c)
			return
		}
		l.dropOuts(c)
		if c.u.state != connShut {
			l.abortConn(c)
		}
		l.maybeFinish(c)
		return
	}
	c.u.off += int(cqe.Res)
	cur := c.u.outs[c.u.outIdx]
	if c.u.off < len(cur) && c.u.state != connShut {
		l.prepSend(c) // short send: write the rest
		return
	}
	c.mu.Lock()
	c.queued -= len(cur)
	queued := c.queued
	c.mu.Unlock()
	if c.u.outIdx+1 < len(c.u.outs) && c.u.state != connShut {
		c.u.outIdx++
		c.u.off = 0
		l.prepSend(c)
	} else {
		l.dropOuts(c)
	}
	if !c.u.sending {
		switch c.u.state {
		case connOpen:
			l.pushSend(c)
		case connClosing:
			l.pushSend(c)
			if !c.u.sending {
				l.shut(c)
			}
		}
	}
	if c.u.paused && c.u.state == connOpen && queued <= l.srv.pauseLow {
		c.u.paused = false
		if !c.u.recvArmed {
			l.armRecv(c)
		}
	}
	l.maybeFinish(c)
}

// drainQueue services connections kicked by Send, Close and Broadcast, and
// loop commands.
func (l *loop) drainQueue() {
	l.mu.Lock()
	q := l.queue
	l.queue = l.work[:0]
	cmds := l.cmds
	l.cmds = 0
	l.mu.Unlock()
	l.work = q
	if cmds&cmdStop != 0 && !l.stopping {
		l.stopping = true
		if l.acceptArmed {
			l.getSQE().PrepCancel(userData(opAccept, 0, 0), 0, userData(opCancel, 0, 0))
		} else if l.lfd >= 0 {
			unix.Close(l.lfd)
			l.lfd = -1
		}
		if l.timeoutArmed {
			l.getSQE().PrepCancel(userData(opTimeout, 0, 0), 0, userData(opCancel, 0, 0))
		}
		for _, c := range l.slots {
			if c != nil {
				c.Close()
			}
		}
	}
	if cmds&cmdAbort != 0 {
		for _, c := range l.slots {
			if c != nil {
				l.abortConn(c)
				l.maybeFinish(c)
			}
		}
	}
}

// flushWork acts on the kicked connections collected by drainQueue, and
// on those flushLocal kicked.
func (l *loop) flushWork() {
	for i, c := range l.work {
		l.work[i] = nil
		l.service(c)
	}
	l.work = l.work[:0]
	// service may run OnDisconnect, whose Sends may kick more.
	l.flushDirty()
	for i := 0; i < len(l.kicks); i++ {
		c := l.kicks[i]
		l.kicks[i] = nil
		l.service(c)
		l.flushDirty()
	}
	l.kicks = l.kicks[:0]
}

// service sends what is queued for c, or closes it as asked.
func (l *loop) service(c *Conn) {
	if c.u.dead {
		return
	}
	c.mu.Lock()
	c.kicked = false
	closing, abort := c.closing, c.abort
	c.mu.Unlock()
	switch {
	case abort:
		l.abortConn(c)
	case closing && c.u.state == connOpen:
		l.beginClose(c)
	default:
		l.pushSend(c)
	}
	l.maybeFinish(c)
}

// sendOwned is Send called by the goroutine of c's own loop (from a
// callback). Taking c.mu for every message costs two atomic
// read-modify-writes, which dominated the CPU time of a pipelined echo;
// instead the first such Send marks c.localOn under c.mu, later ones append
// to c.pending without the lock, and flushLocal (once the batch of
// callbacks is over) accounts them and kicks the send. Sends from other
// goroutines meanwhile queue behind (c.after), which keeps the order of
// Sends that happen one after another. The cap is checked exactly for the
// loop's own Sends; a Send from another goroutine racing with a batch does
// not see that batch's bytes yet, so the queue can pass the cap by at most
// what the loop queued in the batch.
func (c *Conn) sendOwned(msg []byte, newline bool) error {
	u := &c.u
	l := u.l
	if u.dead || c.stopped.Load() || c.afterSet.Load() {
		l.flushLocal(c)
		return c.send(msg, newline)
	}
	n := len(msg)
	if newline {
		n++
	}
	if !u.localOn {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return ErrClosed
		}
		c.localOn = true
		u.qBase = c.queued
		c.mu.Unlock()
		u.localOn = true
		l.dirty = append(l.dirty, c)
	}
	if u.qBase+u.localBytes+n > c.srv.cfg.maxQueue {
		l.flushLocal(c)
		return c.send(msg, newline) // the slow-consumer path
	}
	u.localBytes += n
	if k := len(c.pending); k > 0 {
		// The common case, inline: room in the last chunk. Reslicing it in
		// place stores its length only (no write barrier).
		last := &c.pending[k-1]
		if o := len(*last); cap(*last)-o >= n {
			*last = (*last)[:o+n]
			copy((*last)[o:], msg)
			if newline {
				(*last)[o+n-1] = '\n'
			}
			return nil
		}
	}
	c.pending = c.appendChunks(c.pending, msg, newline)
	return nil
}

// flushLocal ends c.localOn: what the loop appended is accounted in
// c.queued, what other goroutines queued meanwhile goes behind it, and c
// is kicked so that flushWork sends it.
func (l *loop) flushLocal(c *Conn) {
	if !c.u.localOn {
		return
	}
	n := c.u.localBytes
	c.u.localOn, c.u.localBytes = false, 0
	c.mu.Lock()
	c.localOn = false
	if c.abort {
		c.pending, c.after = nil, nil
	} else {
		c.queued += n
		if len(c.after) > 0 {
			c.pending = append(c.pending, c.after...)
			clear(c.after)
			c.after = c.after[:0]
		}
	}
	if c.afterSet.Load() {
		c.afterSet.Store(false)
	}
	kick := n > 0 && !c.kicked
	if kick {
		c.kicked = true
	}
	c.mu.Unlock()
	if kick {
		l.kicks = append(l.kicks, c)
	}
}

// flushDirty runs flushLocal for every connection the loop's own Sends
// touched since the last call.
func (l *loop) flushDirty() {
	if len(l.dirty) == 0 {
		return
	}
	for i, c := range l.dirty {
		l.flushLocal(c)
		l.dirty[i] = nil
	}
	l.dirty = l.dirty[:0]
}

var _ engine = (*uringEngine)(nil)
var _ engine = (*netEngine)(nil)
