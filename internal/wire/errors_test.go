package wire

import (
	"errors"
	"fmt"
	"testing"
)

// TestErrorClasses: each class error has one class and one code, survives
// wrapping, and is found again from its class (as a client does with the
// reply's class).
func TestErrorClasses(t *testing.T) {
	tests := []struct {
		err   error
		class ErrorClass
		code  byte
	}{
		{ErrInvalid, ClassInvalid, CodeInvalid},
		{ErrNotFound, ClassNotFound, CodeInvalid},
		{ErrExists, ClassExists, CodeInvalid},
		{ErrDenied, ClassDenied, CodeInvalid},
		{ErrLimit, ClassLimit, CodeInvalid},
		{ErrBusy, ClassBusy, CodeInvalid},
		{ErrFailed, ClassFailed, CodeInvalid},
		{ErrUnavailable, ClassUnavailable, CodeFatal},
		{ErrInternal, ClassInternal, CodeFatal},
		{errors.New("disk on fire"), ClassInternal, CodeFatal},
		{nil, "", CodeOK},
	}
	for _, tt := range tests {
		t.Run(string(tt.class)+fmt.Sprint(tt.err), func(t *testing.T) {
			for _, err := range []error{tt.err, fmt.Errorf("start web: %w", tt.err)} {
				if tt.err == nil && err != nil {
					continue
				}
				if got := ClassOf(err); got != tt.class {
					t.Fatalf("ClassOf(%v) = %q, want %q", err, got, tt.class)
				}
				if got := ClassOf(err).Code(); got != tt.code {
					t.Fatalf("code of %v = %d, want %d", err, got, tt.code)
				}
			}
			if tt.class == "" {
				return
			}
			back := ClassError(tt.class)
			if back == nil || ClassOf(back) != tt.class {
				t.Fatalf("ClassError(%q) = %v", tt.class, back)
			}
			if tt.err != nil && ClassOf(tt.err) == tt.class && tt.class != ClassInternal && !errors.Is(tt.err, back) {
				t.Fatalf("%v is not errors.Is its class error %v", tt.err, back)
			}
		})
	}
	if ClassError("no-such-class") != nil {
		t.Fatal("ClassError of an unknown class is not nil")
	}
	if ErrorClass("no-such-class").Code() != CodeFatal {
		t.Fatal("an unknown class is not a failure of the daemon")
	}
}
