package sdk

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/wire"
)

// TestAddResolvesRelativePaths: the daemon runs elsewhere, so Client.Add
// sends absolute paths, resolved against the caller's working directory.
func TestAddResolvesRelativePaths(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name              string
		path, workDir     string
		wantPath, wantDir string
	}{
		{"relative path", "bin/svc", "", filepath.Join(wd, "bin/svc"), ""},
		{"dot path", "./svc", "", filepath.Join(wd, "svc"), ""},
		{"relative work dir", "/usr/bin/true", "data", "/usr/bin/true", filepath.Join(wd, "data")},
		{"absolute kept", "/usr/bin/true", "/tmp", "/usr/bin/true", "/tmp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeDaemon(t, func(string) (byte, string) {
				return 0, `{"runtimes":[{"name":"svc","status":"created","pid":0,"restarts":0,"owner_uid":0}]}`
			})
			spec := AddSpec{Name: "svc", Path: tt.path, WorkDir: tt.workDir}
			if _, err := NewClient(d.path).Add(t.Context(), spec, StartOptions{}); err != nil {
				t.Fatal(err)
			}
			var req wire.Request
			if err := json.Unmarshal([]byte(d.next(t)), &req); err != nil {
				t.Fatal(err)
			}
			if req.Add == nil || req.Add.Path != tt.wantPath || req.Add.WorkDir != tt.wantDir {
				t.Fatalf("sent %+v, want path %q and work dir %q", req.Add, tt.wantPath, tt.wantDir)
			}
		})
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
