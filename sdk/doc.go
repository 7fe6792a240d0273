// Package sdk is the public Go SDK of socketley.
//
// It lets a program report what it is to the socketley daemon ([Attach],
// [Detach], [Managed]) and drive the daemon ([Client]: [Client.List],
// [Client.Add], [Client.Start], [Client.Stop] and the other commands of the
// CLI). The io_uring TCP server wrapper lives in the sdk/server package.
//
// Every call that talks to the daemon takes a context first; its deadline
// bounds the call, and a context without one gets the default of the call
// ([DefaultAttachWait], [DefaultTimeout], [DefaultStopTimeout]). Errors match
// [ErrUnreachable], [ErrRefused] or [ErrDaemon] with errors.Is, and a
// refusal or failure also the sentinel of its class ([ErrNotFound],
// [ErrExists], …; [ReplyError] has the class and the daemon's words).
//
// Nothing in the package has a process-wide side effect: no signal
// handler, no goroutine that outlives a call, no change of the environment
// or of GOMAXPROCS. The one state it keeps is the attach of this process,
// so that [Detach] can undo [Attach]. A program handles SIGTERM itself (say
// with signal.NotifyContext) and calls Detach when it stops serving.
//
// The daemon is found the same way the CLI finds it: $SOCKETLEY_SOCKET when
// set (the daemon puts it into every managed unit's environment), else the
// system socket /run/socketley/socketley.sock when the caller may use it,
// else the user socket $XDG_RUNTIME_DIR/socketley/socketley.sock.
//
// The data types ([Runtime], [AddSpec], [Status], [RestartPolicy], …) are
// the daemon's own, given as aliases with the constants a program needs
// ([StatusRunning], [RestartAlways], [ClassNotFound], …); their JSON is that
// of `socketley ls -o json`.
package sdk
