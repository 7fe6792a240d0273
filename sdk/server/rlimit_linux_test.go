//go:build linux

package server

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/socketley/socketley/internal/testenv"
)

// raiseNoFile raises RLIMIT_NOFILE to at least n for this test process.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n {
		return
	}
	old := lim
	lim.Cur = min(n, lim.Max)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < n {
		testenv.Skipf(t, "RLIMIT_NOFILE %d < %d and cannot be raised: %v", lim.Cur, n, err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
}
