package activation

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestFilesIgnoresAnotherProcess: variables meant for another pid (a
// parent that did not unset them) pass nothing.
func TestFilesIgnoresAnotherProcess(t *testing.T) {
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getppid()))
	t.Setenv("LISTEN_FDS", "1")
	if f := Files(false); f != nil {
		t.Fatalf("Files = %v, want nil for another pid", f)
	}
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	t.Setenv("LISTEN_FDS", "0")
	if f := Files(false); f != nil {
		t.Fatalf("Files = %v, want nil for LISTEN_FDS=0", f)
	}
}

// TestInChild passes two sockets to a child process the way systemd does
// (fd 3 and 4, LISTEN_PID = the child's pid) and checks what the child
// sees: with Files, the names and the variables unset; with Listeners,
// both listeners.
func TestInChild(t *testing.T) {
	if mode := os.Getenv("ACTIVATION_CHILD"); mode != "" {
		child(mode)
		return
	}
	var files []*os.File
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
		addrs = append(addrs, ln.Addr().String())
	}
	for _, tt := range []struct{ mode, want string }{
		{"files", "web\nLISTEN_FD_4\nunset\n"},
		{"listeners", addrs[0] + "\n" + addrs[1] + "\n"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			// LISTEN_PID must be the child's own pid: the shell sets it and execs.
			cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" -test.run '^TestInChild$'`, os.Args[0])
			cmd.Env = append(os.Environ(), "ACTIVATION_CHILD="+tt.mode, "LISTEN_FDS=2", "LISTEN_FDNAMES=web:")
			cmd.ExtraFiles = files
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !strings.HasPrefix(string(out), tt.want) {
				t.Fatalf("child printed\n%s\nwant\n%s", out, tt.want)
			}
		})
	}
}

func child(mode string) {
	if mode == "files" {
		for _, f := range Files(true) {
			os.Stdout.WriteString(f.Name() + "\n")
		}
		if os.Getenv("LISTEN_FDS") == "" && os.Getenv("LISTEN_PID") == "" && os.Getenv("LISTEN_FDNAMES") == "" {
			os.Stdout.WriteString("unset\n")
		}
		os.Exit(0)
	}
	lns, err := Listeners()
	if err != nil || len(lns) != 2 || lns[0] == nil || lns[1] == nil {
		println("listeners:", len(lns), err)
		os.Exit(1)
	}
	for _, ln := range lns {
		os.Stdout.WriteString(ln.Addr().String() + "\n")
	}
	os.Exit(0)
}
