package sdk

import (
	"github.com/socketley/socketley/internal/control"
	"github.com/socketley/socketley/internal/wire"
)

// Errors returned by the SDK; test them with errors.Is.
var (
	// ErrUnreachable means the daemon's control socket could not be reached
	// (the error is an *UnreachableError).
	ErrUnreachable = control.ErrUnreachable
	// ErrRefused means the daemon answered and refused the request (reply
	// code 1): bad input, an unknown runtime, a duplicate name, permission
	// denied, a limit, or a runtime that failed to run.
	ErrRefused = control.ErrRefused
	// ErrDaemon means the daemon failed while serving the request (reply
	// code 2): a systemd, D-Bus or I/O error on its side.
	ErrDaemon = control.ErrDaemon
)

// The kind of a refusal or failure, as the daemon classed it (the reply's
// class); a *ReplyError matches exactly one of them with errors.Is, besides
// ErrRefused or ErrDaemon. Replies to the C++ line format carry no class.
var (
	// ErrInvalid: bad input (a malformed name, path, flag or request).
	ErrInvalid = wire.ErrInvalid
	// ErrNotFound: an unknown runtime, or a pattern that matches none.
	ErrNotFound = wire.ErrNotFound
	// ErrExists: the name is taken.
	ErrExists = wire.ErrExists
	// ErrDenied: the caller may not do this (another user's runtime).
	ErrDenied = wire.ErrDenied
	// ErrLimit: a limit is reached (runtimes per user).
	ErrLimit = wire.ErrLimit
	// ErrBusy: the runtime is in the middle of another operation (an
	// upgrade); try again once it has finished.
	ErrBusy = wire.ErrBusy
	// ErrFailed: the runtime did not reach "running" (its process exited,
	// or the wait timed out).
	ErrFailed = wire.ErrFailed
	// ErrUnavailable: the daemon cannot reach systemd.
	ErrUnavailable = wire.ErrUnavailable
	// ErrInternal: any other failure of the daemon.
	ErrInternal = wire.ErrInternal
)

// ReplyError is the error of a reply with a non-zero code. Its fields:
// Code (1 refused, 2 failed), Message (the daemon's words, also what Error
// returns) and Class (an ErrorClass; empty for a reply to the C++ line
// format, as Attach and Detach send). errors.Is matches ErrRefused (code 1)
// or ErrDaemon (2), and the sentinel of its Class (ErrNotFound, ErrLimit,
// …); errors.As(err, &re) with re *sdk.ReplyError gives the fields.
type ReplyError = control.ReplyError

// UnreachableError says which socket could not be reached (Socket) and why
// (Err, the dial error, which it unwraps to); errors.Is matches
// ErrUnreachable.
type UnreachableError = control.UnreachableError
