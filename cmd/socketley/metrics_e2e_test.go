//go:build integration

package main_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
)

// scrape GETs url and returns the body, failing on anything but 200.
func scrape(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: waitTimeout}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("scrape %s: %s, Content-Type %q\n%s", url, resp.Status, resp.Header.Get("Content-Type"), b)
	}
	return string(b)
}

// TestMetrics: socketley daemon --metrics-listen serves /metrics; a runtime
// added and started shows up as up, a kill -9 counts a restart, the
// control requests are counted, and promtool check metrics accepts the
// whole scrape. The daemon logs the address (port 0 picks a free one).
func TestMetrics(t *testing.T) {
	promtool := testenv.RequireTool(t, "promtool", "prometheus")
	e := newEnvWith(t, "--metrics-listen", "127.0.0.1:0")
	m := e.waitLog(0, "the metrics address", regexp.MustCompile(`msg="serving metrics" addr=(http://127\.0\.0\.1:\d+/metrics)`))
	url := e.log.String()[m[2]:m[3]]

	e.script("sleeper.sh", "exec sleep 1000")
	e.ok("add", "./sleeper.sh", "-s", "--wait")
	body := scrape(t, url)
	for _, want := range []string{
		`socketley_runtime_up{name="sleeper",mode="unit"} 1`,
		`socketley_runtime_status{name="sleeper",mode="unit",status="running"} 1`,
		`socketley_runtime_restarts_total{name="sleeper",mode="unit"} 0`,
		`socketley_runtime_start_time_seconds{name="sleeper",mode="unit"} `,
		`socketley_runtimes{mode="unit"} 1`,
		`socketley_systemd_connected 1`,
		`socketley_control_requests_total{command="add",result="ok"} 1`,
		`socketley_control_request_duration_seconds_count{command="add"} 1`,
		`socketley_build_info{version="`,
		`process_open_fds `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the scrape has no %q:\n%s", want, body)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s\nthe scrape:\n%s", err, out, body)
	}

	// A crash is a restart: the counter goes up once systemd restarted it.
	pid := e.psPID("sleeper")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the scrape counts the restart", func() bool {
		return strings.Contains(scrape(t, url), `socketley_runtime_restarts_total{name="sleeper",mode="unit"} 1`+"\n")
	})
	_, _, _ = e.run("show", "nope") // a not-found error
	if body := scrape(t, url); !strings.Contains(body, `socketley_control_requests_total{command="show",result="not-found"} 1`) {
		t.Errorf("the failed show is not counted:\n%s", body)
	}

	// The server stops with the daemon.
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/metrics")
	e.stopDaemon(syscall.SIGTERM)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Errorf("%s still accepts after the daemon exited", addr)
	}
	e.startDaemon() // for the cleanup's remove
}

// TestMetricsBadAddress: a bad --metrics-listen stops the daemon at start
// with exit 1 and a message naming the flag, before it touches its state
// directory; so does an address that is taken.
func TestMetricsBadAddress(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tt := range []struct {
		name, flag, want string
	}{
		{"no port", "127.0.0.1", "--metrics-listen: \"127.0.0.1\" is not HOST:PORT"},
		{"named port", "127.0.0.1:http", "is not a number from 0 to 65535"},
		{"taken", taken.Addr().String(), "--metrics-listen " + taken.Addr().String() + ": listen tcp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			state := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			args := []string{"daemon", "--user", "--socket", filepath.Join(dir, "s.sock"), "--state-dir", state}
			if tt.flag != "" {
				args = append(args, "--metrics-listen", tt.flag)
			}
			cmd := exec.Command(binPath, args...)
			cmd.Env = append(os.Environ(), "SOCKETLEY_METRICS_LISTEN=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != 1 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d (%v), stderr %q; want exit 1 and %q", code, err, stderr.String(), tt.want)
			}
			if _, err := os.Stat(state); err == nil {
				t.Errorf("the refused daemon created its state directory %s", state)
			}
		})
	}
}

// TestMetricsBadEnvironment: a bad or taken $SOCKETLEY_METRICS_LISTEN (the
// packaged service's environment file) does not stop the daemon, which
// would be restarted into the same error until systemd gives up on it and
// its control socket: the daemon logs why metrics are off and runs.
func TestMetricsBadEnvironment(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tt := range []struct{ name, env, want string }{
		{"not HOST:PORT", "9559", `SOCKETLEY_METRICS_LISTEN: \"9559\" is not HOST:PORT`},
		{"taken", taken.Addr().String(), "SOCKETLEY_METRICS_LISTEN " + taken.Addr().String() + ": listen tcp"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SOCKETLEY_METRICS_LISTEN", tt.env)
			e := newEnv(t)
			e.waitLog(0, "why metrics are off", regexp.MustCompile(`level=ERROR msg="metrics are off: `+regexp.QuoteMeta(tt.want)))
			e.ok("ls")
		})
	}
}
