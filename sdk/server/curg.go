//go:build amd64 || arm64

package server

// curg returns the address of the calling goroutine's runtime descriptor
// (the g that the runtime keeps in thread-local storage on amd64 and in a
// register on arm64). It identifies the calling goroutine for as long as
// that goroutine lives and is only ever compared, never dereferenced. The
// io_uring engine uses it to recognize a Send made by a loop's own
// goroutine (from a callback), which may then skip the connection's lock;
// see Conn.Send.
func curg() uintptr
