package sdk

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// TestReplyErrorClasses: the class of a JSON reply becomes the sentinel
// errors.Is matches (exactly one), next to ErrRefused or ErrDaemon; the
// message is the daemon's words.
func TestReplyErrorClasses(t *testing.T) {
	classes := []struct {
		class    wire.ErrorClass
		sentinel error
		refused  bool
	}{
		{wire.ClassInvalid, ErrInvalid, true},
		{wire.ClassNotFound, ErrNotFound, true},
		{wire.ClassExists, ErrExists, true},
		{wire.ClassDenied, ErrDenied, true},
		{wire.ClassLimit, ErrLimit, true},
		{wire.ClassBusy, ErrBusy, true},
		{wire.ClassFailed, ErrFailed, true},
		{wire.ClassUnavailable, ErrUnavailable, false},
		{wire.ClassInternal, ErrInternal, false},
	}
	all := []error{ErrInvalid, ErrNotFound, ErrExists, ErrDenied, ErrLimit, ErrBusy, ErrFailed, ErrUnavailable, ErrInternal}
	for _, tt := range classes {
		t.Run(string(tt.class), func(t *testing.T) {
			sock := testenv.FakeDaemon(t, func(string) (byte, []byte) {
				b, _ := json.Marshal(wire.Result{Error: "the daemon's words", Class: tt.class})
				return tt.class.Code(), b
			})
			_, err := NewClient(sock).Show(t.Context(), "web")
			if err == nil || err.Error() != "the daemon's words" {
				t.Fatalf("got %v", err)
			}
			for _, s := range all {
				if errors.Is(err, s) != (s == tt.sentinel) {
					t.Fatalf("errors.Is(err, %v) = %v", s, errors.Is(err, s))
				}
			}
			if errors.Is(err, ErrRefused) != tt.refused || errors.Is(err, ErrDaemon) == tt.refused {
				t.Fatalf("ErrRefused %v, ErrDaemon %v; want refused=%v", errors.Is(err, ErrRefused), errors.Is(err, ErrDaemon), tt.refused)
			}
			var re *ReplyError
			if !errors.As(err, &re) || re.Class != tt.class {
				t.Fatalf("errors.As: %+v", re)
			}
		})
	}
}
