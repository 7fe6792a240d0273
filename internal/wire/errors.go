package wire

import (
	"errors"
	"fmt"
)

// ErrorClass is the kind of a failed request. The daemon sets it where the
// error is made (by wrapping one of the class errors below); it travels in
// the JSON reply's "class" field and decides the reply code (Code), so that
// clients act on the kind of failure, never on the message's words. Legacy
// (C++ format) replies carry only the code.
type ErrorClass string

// Error classes.
const (
	// ClassInvalid is bad input: a malformed name, path, flag or request.
	ClassInvalid ErrorClass = "invalid"
	// ClassNotFound is an unknown runtime name or a pattern matching nothing.
	ClassNotFound ErrorClass = "not-found"
	// ClassExists is a duplicate runtime name.
	ClassExists ErrorClass = "exists"
	// ClassDenied is a caller without the right to do what it asked.
	ClassDenied ErrorClass = "denied"
	// ClassLimit is a limit reached: runtimes per user, connections.
	ClassLimit ErrorClass = "limit"
	// ClassBusy is a runtime in the middle of another operation (an
	// upgrade): try again once it has finished.
	ClassBusy ErrorClass = "busy"
	// ClassFailed is a runtime that did not reach "running" (--wait), or
	// whose process exited during its start.
	ClassFailed ErrorClass = "failed"
	// ClassUnavailable is systemd or D-Bus being unreachable.
	ClassUnavailable ErrorClass = "unavailable"
	// ClassInternal is any other failure of the daemon (I/O, a full disk,
	// an unexpected systemd answer).
	ClassInternal ErrorClass = "internal"
)

// Code returns the reply code (and CLI exit code) of the class: CodeInvalid
// for what the caller can act on, CodeFatal for the daemon's own failures.
// This is the one place that maps the two.
func (c ErrorClass) Code() byte {
	switch c {
	case "":
		return CodeOK
	case ClassUnavailable, ClassInternal:
		return CodeFatal
	case ClassInvalid, ClassNotFound, ClassExists, ClassDenied, ClassLimit, ClassBusy, ClassFailed:
		return CodeInvalid
	}
	return CodeFatal
}

// classError is the sentinel error of one class.
type classError struct {
	class ErrorClass
	msg   string
}

func (e *classError) Error() string { return e.msg }

// Class errors: wrap one (fmt.Errorf("...: %w", wire.ErrNotFound), or an
// error whose Is reports it) to give an error its class; errors.Is tests
// for it, on either side of the socket.
var (
	ErrInvalid     error = &classError{ClassInvalid, "invalid request"}
	ErrNotFound    error = &classError{ClassNotFound, "not found"}
	ErrExists      error = &classError{ClassExists, "already exists"}
	ErrDenied      error = &classError{ClassDenied, "permission denied"}
	ErrLimit       error = &classError{ClassLimit, "limit reached"}
	ErrBusy        error = &classError{ClassBusy, "busy"}
	ErrFailed      error = &classError{ClassFailed, "runtime failed"}
	ErrUnavailable error = &classError{ClassUnavailable, "systemd unavailable"}
	ErrInternal    error = &classError{ClassInternal, "internal error"}
)

var classErrors = []error{ErrInvalid, ErrNotFound, ErrExists, ErrDenied, ErrLimit, ErrBusy, ErrFailed, ErrUnavailable, ErrInternal}

// ClassOf returns the class of err: that of the first class error it wraps,
// ClassInternal for any other non-nil error, "" for nil.
func ClassOf(err error) ErrorClass {
	if err == nil {
		return ""
	}
	for _, c := range classErrors {
		if errors.Is(err, c) {
			return c.(*classError).class
		}
	}
	return ClassInternal
}

// ClassError returns the class error of c (nil for an unknown class), for a
// client that turns a reply's class back into an error errors.Is can test.
func ClassError(c ErrorClass) error {
	for _, e := range classErrors {
		if e.(*classError).class == c {
			return e
		}
	}
	return nil
}

// classed is an error of one class whose message does not repeat the
// class's name: errors.Is(err, class) holds, and err.Error() is the message.
type classed struct {
	class error
	msg   string
	err   error // fmt.Errorf's error: errors.Is/As reach its %w operands
}

func (e *classed) Error() string        { return e.msg }
func (e *classed) Is(target error) bool { return target == e.class }
func (e *classed) Unwrap() error        { return e.err }

// Error returns an error of class with the message msg (Errorf without
// formatting: cheap enough for a package-level error).
func Error(class error, msg string) error { return &classed{class: class, msg: msg} }

// Errorf returns an error of class (one of the Err* class errors) with a
// formatted message; a %w operand is wrapped as fmt.Errorf does.
func Errorf(class error, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &classed{class: class, msg: err.Error(), err: err}
}

// invalidf returns an error of class invalid with a formatted message.
func invalidf(format string, args ...any) error {
	return Errorf(ErrInvalid, format, args...)
}
