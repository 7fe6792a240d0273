package examples_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/socketley/socketley/internal/testenv"
)

// fakeDaemon answers every request on a unix socket with code 0 and
// passes the request lines to the test.
func fakeDaemon(t *testing.T) (string, <-chan string) {
	t.Helper()
	lines := make(chan string, 16)
	sock := testenv.FakeDaemon(t, func(line string) (byte, []byte) {
		lines <- line
		return 0, []byte("ok\n")
	})
	return sock, lines
}

// TestKVServer runs the walkthrough's program standalone next to a
// daemon: it attaches, serves, announces changes, and on SIGTERM shuts
// down, detaches and exits 0.
func TestKVServer(t *testing.T) {
	sock, requests := fakeDaemon(t)
	p := startWith(t, "kv-server", sock)
	port := strings.TrimPrefix(p.addr, "127.0.0.1:")
	want := fmt.Sprintf("attach server kv %s --pid %d", port, p.cmd.Process.Pid)
	if got := receiveLine(t, requests); got != want {
		t.Fatalf("daemon got %q, want %q", got, want)
	}
	a, b := p.dial(), p.dial()
	// A reply means the server has accepted b: a broadcast reaches only
	// connections already accepted.
	b.send("GET color")
	b.expect("NIL")
	a.send("SET color blue")
	a.expect("OK")
	b.expect("* set color")
	b.send("GET color")
	b.expect("VALUE blue")
	b.send("GET nothing")
	b.expect("NIL")
	b.send("DEL color")
	b.expect("OK")
	a.expect("* del color")
	a.send("PUT x")
	a.expect("ERR unknown command PUT")
	// A client that dies mid-line does not run half a command.
	c := p.dial()
	if _, err := c.c.Write([]byte("SET color re")); err != nil {
		t.Fatal(err)
	}
	_ = c.c.(*net.TCPConn).CloseWrite()
	c.closed()
	a.send("GET color")
	a.expect("NIL")
	p.terminate("kv-server stopped")
	a.closed()
	b.closed()
	if got := receiveLine(t, requests); got != "remove kv" {
		t.Fatalf("daemon got %q, want the detach", got)
	}
}

func receiveLine(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case l := <-ch:
		return l
	case <-time.After(timeout):
		t.Fatalf("no request reached the daemon within %s", timeout)
		return ""
	}
}

// TestSDKDocShowsKVServer: the Go blocks of docs/sdk.md, in order, are
// examples/kv-server/main.go exactly, so the walkthrough is the program
// that TestKVServer builds and runs.
func TestSDKDocShowsKVServer(t *testing.T) {
	doc, err := os.ReadFile("../docs/sdk.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("kv-server/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var shown bytes.Buffer
	in := false
	for _, line := range strings.SplitAfter(string(doc), "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```go":
			in = true
		case in && strings.TrimSpace(line) == "```":
			in = false
		case in:
			shown.WriteString(line)
		}
	}
	if shown.String() != string(src) {
		t.Fatalf("the ```go blocks of docs/sdk.md differ from examples/kv-server/main.go; first difference at byte %d",
			firstDiff(shown.Bytes(), src))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
