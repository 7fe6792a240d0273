// Package sdk is the public Go SDK of socketley.
//
// It lets a program report what it is to the socketley daemon ([Attach],
// [Detach]) and drive the daemon ([Client]). The io_uring TCP server wrapper
// lives in the sdk/server package.
//
// The daemon is found the same way the CLI finds it: $SOCKETLEY_SOCKET when
// set (the daemon puts it into every managed unit's environment), else the
// system socket /run/socketley/socketley.sock when the caller may use it,
// else the user socket $XDG_RUNTIME_DIR/socketley/socketley.sock.
package sdk
