package uring

import (
	"unsafe"
)

// Setup flags (io_uring_params.flags).
const (
	SetupIOPoll       uint32 = 1 << 0
	SetupSQPoll       uint32 = 1 << 1
	SetupSQAff        uint32 = 1 << 2
	SetupCQSize       uint32 = 1 << 3
	SetupClamp        uint32 = 1 << 4
	SetupAttachWQ     uint32 = 1 << 5
	SetupRDisabled    uint32 = 1 << 6
	SetupSubmitAll    uint32 = 1 << 7
	SetupCoopTaskrun  uint32 = 1 << 8
	SetupTaskrunFlag  uint32 = 1 << 9
	SetupSQE128       uint32 = 1 << 10
	SetupCQE32        uint32 = 1 << 11
	SetupSingleIssuer uint32 = 1 << 12
	SetupDeferTaskrun uint32 = 1 << 13
	SetupNoMmap       uint32 = 1 << 14
	SetupRegisteredFD uint32 = 1 << 15
	SetupNoSQArray    uint32 = 1 << 16
)

// Feature flags (io_uring_params.features).
const (
	FeatSingleMmap uint32 = 1 << 0
	FeatNoDrop     uint32 = 1 << 1
	FeatFastPoll   uint32 = 1 << 5
	FeatExtArg     uint32 = 1 << 8
	FeatMinTimeout uint32 = 1 << 15
)

// io_uring_enter flags.
const (
	EnterGetEvents      uint32 = 1 << 0
	EnterSQWakeup       uint32 = 1 << 1
	EnterSQWait         uint32 = 1 << 2
	EnterExtArg         uint32 = 1 << 3
	EnterRegisteredRing uint32 = 1 << 4
)

// Flags in the SQ ring's flags word.
const (
	SQNeedWakeup uint32 = 1 << 0
	SQCQOverflow uint32 = 1 << 1
	SQTaskrun    uint32 = 1 << 2
)

// Opcodes (enum io_uring_op).
const (
	OpNop         uint8 = 0
	OpPollAdd     uint8 = 6
	OpPollRemove  uint8 = 7
	OpTimeout     uint8 = 11
	OpAccept      uint8 = 13
	OpAsyncCancel uint8 = 14
	OpClose       uint8 = 19
	OpRead        uint8 = 22
	OpWrite       uint8 = 23
	OpSend        uint8 = 26
	OpRecv        uint8 = 27
	OpShutdown    uint8 = 34
	OpMsgRing     uint8 = 40
)

// SQE flags (io_uring_sqe.flags).
const (
	SQEFixedFile      uint8 = 1 << 0
	SQEIODrain        uint8 = 1 << 1
	SQEIOLink         uint8 = 1 << 2
	SQEIOHardlink     uint8 = 1 << 3
	SQEAsync          uint8 = 1 << 4
	SQEBufferSelect   uint8 = 1 << 5
	SQECQESkipSuccess uint8 = 1 << 6
)

// ioprio flags for accept and send/recv.
const (
	AcceptMultishot   uint16 = 1 << 0
	RecvSendPollFirst uint16 = 1 << 0
	RecvMultishot     uint16 = 1 << 1
)

// PollAddMulti is set in the len field of a POLL_ADD SQE for a multishot poll.
const PollAddMulti uint32 = 1 << 0

// Async cancel flags.
const (
	CancelAll     uint32 = 1 << 0
	CancelFD      uint32 = 1 << 1
	CancelAny     uint32 = 1 << 2
	CancelFDFixed uint32 = 1 << 3
)

// CQE flags (io_uring_cqe.flags).
const (
	CQEFBuffer       uint32 = 1 << 0
	CQEFMore         uint32 = 1 << 1
	CQEFSockNonempty uint32 = 1 << 2
	CQEFNotif        uint32 = 1 << 3
	// CQEBufferShift is the shift of the buffer id in CQE flags.
	CQEBufferShift = 16
)

// io_uring_register opcodes.
const (
	registerProbe      = 8
	registerRingFDs    = 20
	unregisterRingFDs  = 21
	registerPbufRing   = 22
	unregisterPbufRing = 23
)

// mmap offsets.
const (
	offSQRing int64 = 0
	offCQRing int64 = 0x8000000
	offSQEs   int64 = 0x10000000
)

// probeOpSupported is set in io_uring_probe_op.flags for supported opcodes.
const probeOpSupported = 1 << 0

// sqringOffsets mirrors struct io_sqring_offsets.
type sqringOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Flags       uint32
	Dropped     uint32
	Array       uint32
	Resv1       uint32
	UserAddr    uint64
}

// cqringOffsets mirrors struct io_cqring_offsets.
type cqringOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Overflow    uint32
	CQEs        uint32
	Flags       uint32
	Resv1       uint32
	UserAddr    uint64
}

// Params mirrors struct io_uring_params. Callers set Flags (and CQEntries
// with SetupCQSize); the kernel fills in the rest.
type Params struct {
	SQEntries    uint32
	CQEntries    uint32
	Flags        uint32
	SQThreadCPU  uint32
	SQThreadIdle uint32
	Features     uint32
	WQFD         uint32
	Resv         [3]uint32
	SQOff        sqringOffsets
	CQOff        cqringOffsets
}

// SQE mirrors struct io_uring_sqe (64 bytes). Union members are named after
// their use in this package.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IOPrio      uint16
	FD          int32
	Off         uint64 // also addr2
	Addr        uint64
	Len         uint32
	OpFlags     uint32 // rw_flags, msg_flags, accept_flags, poll32_events, cancel_flags, ...
	UserData    uint64
	BufIndex    uint16 // also buf_group
	Personality uint16
	SpliceFDIn  int32 // also file_index, optlen, addr_len
	Addr3       uint64
	pad2        uint64
}

// CQE mirrors struct io_uring_cqe (16 bytes, without CQE32).
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// More reports whether a multishot request stays armed after this CQE.
func (c *CQE) More() bool { return c.Flags&CQEFMore != 0 }

// BufferID returns the provided buffer id and whether the CQE carries one.
func (c *CQE) BufferID() (uint16, bool) {
	return uint16(c.Flags >> CQEBufferShift), c.Flags&CQEFBuffer != 0
}

// bufReg mirrors struct io_uring_buf_reg.
type bufReg struct {
	RingAddr    uint64
	RingEntries uint32
	BGID        uint16
	Flags       uint16
	Resv        [3]uint64
}

// buf mirrors struct io_uring_buf.
type buf struct {
	Addr uint64
	Len  uint32
	BID  uint16
	Resv uint16 // the ring's tail overlays this field of entry 0
}

// probeOp mirrors struct io_uring_probe_op.
type probeOp struct {
	Op    uint8
	Resv  uint8
	Flags uint16
	Resv2 uint32
}

// probeHdr mirrors the header of struct io_uring_probe.
type probeHdr struct {
	LastOp uint8
	OpsLen uint8
	Resv   uint16
	Resv2  [3]uint32
}

// geteventsArg mirrors struct io_uring_getevents_arg.
type geteventsArg struct {
	Sigmask     uint64
	SigmaskSz   uint32
	MinWaitUsec uint32
	TS          uint64
}

// rsrcUpdate mirrors struct io_uring_rsrc_update (used to register the ring fd).
type rsrcUpdate struct {
	Offset uint32
	Resv   uint32
	Data   uint64
}

// Compile-time layout checks against the kernel ABI.
var (
	_ [64 - unsafe.Sizeof(SQE{})]struct{}
	_ [unsafe.Sizeof(SQE{}) - 64]struct{}
	_ [16 - unsafe.Sizeof(CQE{})]struct{}
	_ [unsafe.Sizeof(CQE{}) - 16]struct{}
	_ [120 - unsafe.Sizeof(Params{})]struct{}
	_ [unsafe.Sizeof(Params{}) - 120]struct{}
	_ [40 - unsafe.Sizeof(bufReg{})]struct{}
	_ [unsafe.Sizeof(bufReg{}) - 40]struct{}
	_ [16 - unsafe.Sizeof(buf{})]struct{}
	_ [16 - unsafe.Sizeof(probeHdr{})]struct{}
	_ [8 - unsafe.Sizeof(probeOp{})]struct{}
)
