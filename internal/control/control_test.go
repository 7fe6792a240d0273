package control

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// TestDo: a request goes out in the JSON form with the client's version;
// a failed reply gives a *ReplyError with the daemon's words and class and,
// with it, the reply (the runtimes it failed on are marked); a failed reply
// that is not JSON still gives a *ReplyError; a done context fails the
// request.
func TestDo(t *testing.T) {
	reqs := make(chan wire.Request, 8)
	sock := testenv.FakeDaemon(t, func(line string) (byte, []byte) {
		var req wire.Request
		if err := json.Unmarshal([]byte(line), &req); err != nil {
			return wire.CodeInvalid, []byte("not JSON: " + line)
		}
		reqs <- req
		switch req.Cmd {
		case wire.CmdStart:
			b, _ := json.Marshal(wire.Result{Error: "start b: it exited", Class: wire.ClassFailed, Runtimes: []wire.Runtime{
				{Name: "a", Status: wire.StatusRunning, PID: 7},
				{Name: "b", Status: wire.StatusFailed, Failed: "it exited", FailedClass: wire.ClassFailed},
			}})
			return wire.CodeInvalid, b
		case wire.CmdStop:
			return wire.CodeFatal, []byte("plain words\n")
		}
		return wire.CodeOK, []byte(`{"runtimes":[{"name":"a","status":"running","pid":7,"restarts":0,"owner_uid":0}]}`)
	})
	c := &Client{Socket: sock, Version: "v9"}

	res, err := c.Do(t.Context(), wire.Request{Cmd: wire.CmdList})
	if err != nil || len(res.Runtimes) != 1 || res.Runtimes[0].PID != 7 {
		t.Fatalf("list = %+v, %v", res, err)
	}
	if req := <-reqs; req.Cmd != wire.CmdList || req.Version != "v9" {
		t.Fatalf("the daemon got %+v, want ls with version v9", req)
	}

	res, err = c.Do(t.Context(), wire.Request{Cmd: wire.CmdStart, Names: []string{"a", "b"}})
	var re *ReplyError
	if !errors.As(err, &re) || re.Code != 1 || re.Class != wire.ClassFailed || re.Message != "start b: it exited" {
		t.Fatalf("start error = %#v", err)
	}
	if !errors.Is(err, ErrRefused) || errors.Is(err, ErrDaemon) || !errors.Is(err, wire.ErrFailed) || errors.Is(err, wire.ErrNotFound) {
		t.Fatalf("start error %v matches the wrong sentinels", err)
	}
	if res == nil || len(res.Runtimes) != 2 || res.Runtimes[1].Failed == "" || res.Runtimes[0].Failed != "" {
		t.Fatalf("start reply = %+v, want both runtimes, b marked failed", res)
	}

	res, err = c.Do(t.Context(), wire.Request{Cmd: wire.CmdStop, Names: []string{"a"}})
	if !errors.As(err, &re) || re.Code != 2 || re.Class != "" || re.Message != "plain words" || !errors.Is(err, ErrDaemon) || res != nil {
		t.Fatalf("stop = %+v, %#v", res, err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Do(ctx, wire.Request{Cmd: wire.CmdList}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context gave %v", err)
	}
}

// TestLine: a line goes out as it is, ending in one newline, and a refusal
// is a code, not an error.
func TestLine(t *testing.T) {
	lines := make(chan string, 1)
	sock := testenv.FakeDaemon(t, func(line string) (byte, []byte) {
		lines <- line
		return wire.CodeInvalid, []byte("no\n")
	})
	code, text, err := (&Client{Socket: sock}).Line(t.Context(), "remove x\r\n")
	if err != nil || code != 1 || text != "no\n" {
		t.Fatalf("Line = %d, %q, %v", code, text, err)
	}
	if l := <-lines; l != "remove x" {
		t.Fatalf("the daemon got %q", l)
	}
	_, _, err = (&Client{Socket: t.TempDir() + "/none.sock"}).Line(t.Context(), "ls")
	var ue *UnreachableError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnreachable) || !strings.HasSuffix(ue.Socket, "/none.sock") {
		t.Fatalf("missing socket gave %v", err)
	}
}

// TestRequestTimeout: without a deadline of the caller's, a stop is given
// longer than any stop the daemon allows (5 min stop timeout, twice, plus
// 10 s), and a wait gets its own timeout on top.
func TestRequestTimeout(t *testing.T) {
	const longestStop = 2*5*time.Minute + 10*time.Second
	tests := []struct {
		name    string
		req     wire.Request
		atLeast time.Duration
		atMost  time.Duration
	}{
		{"list", wire.Request{Cmd: wire.CmdList}, DefaultTimeout, DefaultTimeout},
		{"stop", wire.Request{Cmd: wire.CmdStop}, longestStop, DefaultStopTimeout},
		{"remove", wire.Request{Cmd: wire.CmdRemove}, longestStop, DefaultStopTimeout},
		{"restart and wait", wire.Request{Cmd: wire.CmdRestart, Wait: true, Timeout: wire.Duration(time.Minute)}, longestStop + time.Minute, DefaultStopTimeout + time.Minute},
		{"start and wait, daemon's default", wire.Request{Cmd: wire.CmdStart, Wait: true}, DefaultTimeout + 10*time.Second, DefaultTimeout + 10*time.Second},
		// A restart and its wait, then maybe a switch back: a restart and a wait again.
		{"upgrade", wire.Request{Cmd: wire.CmdUpgrade, Timeout: wire.Duration(time.Minute)}, 2*longestStop + 2*time.Minute, 2*DefaultStopTimeout + 2*time.Minute},
		{"upgrade, daemon's default wait", wire.Request{Cmd: wire.CmdUpgrade}, 2*longestStop + 2*10*time.Second, 2*DefaultStopTimeout + 2*10*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := requestTimeout(tt.req)
			if got < tt.atLeast || got > tt.atMost {
				t.Errorf("got %v, want between %v and %v", got, tt.atLeast, tt.atMost)
			}
		})
	}
}
