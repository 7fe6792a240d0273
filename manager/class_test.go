package manager

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/socketley/socketley/internal/wire"
)

// TestReplyCarriesTheClass: a reply says what kind of failure it is (class,
// and the code from it), and marks the runtimes of a multi-runtime command
// it failed on, so that clients never read the message to find out.
func TestReplyCarriesTheClass(t *testing.T) {
	for _, tt := range []struct {
		err   error
		class wire.ErrorClass
		code  byte
	}{
		{errorf(ErrNotFound, "unknown runtime %q", "x"), wire.ClassNotFound, wire.CodeInvalid},
		{errorf(ErrLimit, "too many"), wire.ClassLimit, wire.CodeInvalid},
		{errorf(ErrBusy, "an upgrade is under way"), wire.ClassBusy, wire.CodeInvalid},
		{fmt.Errorf("start web: %w", errorf(ErrUnavailable, "no bus")), wire.ClassUnavailable, wire.CodeFatal},
		{errors.New("write registry: no space left on device"), wire.ClassInternal, wire.CodeFatal},
	} {
		code, payload := jsonReply(nil, tt.err)
		var res wire.Result
		if err := json.Unmarshal(payload, &res); err != nil {
			t.Fatal(err)
		}
		if code != tt.code || res.Class != tt.class || res.Error != tt.err.Error() {
			t.Fatalf("%v: code %d class %q error %q; want %d %q", tt.err, code, res.Class, res.Error, tt.code, tt.class)
		}
	}

	m, _ := newTestManager(t)
	if _, err := m.add(t.Context(), me(), wire.AddSpec{Name: "svc", Path: exe(t, t.TempDir(), "svc")}, false, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.update(func(r *Registry) error {
		r.put(&Entry{Name: "att", PID: 1 << 22, OwnerUID: me().UID, Desired: DesiredRunning, Started: true})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res, err := m.start(t.Context(), me(), []string{"att", "svc"}, false, 0)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("start of an attached process and a managed one: %v, want ErrInvalid", err)
	}
	marks := map[string]wire.Runtime{}
	for _, r := range res.Runtimes {
		marks[r.Name] = r
	}
	if a := marks["att"]; a.Failed == "" || a.FailedClass != wire.ClassInvalid {
		t.Fatalf("the runtime the start failed on is not marked: %+v", a)
	}
	if s := marks["svc"]; s.Failed != "" || s.FailedClass != "" {
		t.Fatalf("the runtime that started is marked failed: %+v", s)
	}
}
