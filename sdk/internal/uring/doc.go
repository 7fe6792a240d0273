// Package uring is the SDK's own minimal io_uring layer, written directly on
// the io_uring_setup, io_uring_enter and io_uring_register system calls of
// golang.org/x/sys/unix (no cgo, no liburing, no linkname tricks).
//
// It provides what the socketley server wrapper needs and nothing more: a
// ring ([Ring]) with mmap'ed submission and completion queues, typed
// preparation helpers for the operations used by a TCP server (multishot
// accept, multishot recv with buffer selection, send, multishot poll,
// cancel, nop), a provided-buffer ring ([BufRing], IORING_REGISTER_PBUF_RING)
// whose memory is mmap'ed outside the Go heap, and an opcode probe.
//
// Rules for callers:
//   - A Ring is not safe for concurrent use. Rings created with
//     IORING_SETUP_SINGLE_ISSUER must be used from the OS thread that
//     created them (call runtime.LockOSThread first).
//   - Memory referenced by a submitted SQE (a send buffer, a sockaddr) must
//     stay referenced by the caller until the matching completion arrives.
//     The Go heap does not move objects, so keeping a reference is enough.
//   - user_data should carry identifiers, never Go pointers.
//
// The package builds only on Linux; on other systems it is empty.
package uring
