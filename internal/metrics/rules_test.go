package metrics

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
	"github.com/socketley/socketley/internal/wire"
)

// TestAlertRules: promtool accepts the shipped alert rules and their unit
// tests pass (crash-loop, unhealthy for more than a minute, daemon
// disconnected; packaging/prometheus).
func TestAlertRules(t *testing.T) {
	promtool := testenv.RequireTool(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "socketley-rules.yml"},
		{"test", "rules", "socketley-rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../packaging/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// TestPromtoolChecksScrape: promtool check metrics (its linter) finds
// nothing to say about a whole scrape.
func TestPromtoolChecksScrape(t *testing.T) {
	promtool := testenv.RequireTool(t, "promtool", "prometheus")
	var reqs Requests
	reqs.Observe("ls", "", 1000)
	s := &Source{Runtimes: func() ([]wire.Runtime, bool) { return fixedView(), true }, Requests: &reqs, Started: t0}
	checkMetrics(t, promtool, s.Scrape())
}

// checkMetrics runs body through promtool check metrics.
func checkMetrics(t *testing.T, promtool string, body []byte) {
	t.Helper()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
