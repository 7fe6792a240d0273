//go:build unix

package sdk

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/socketley/socketley/internal/testenv"
)

const envSignalChild = "SOCKETLEY_TEST_SIGNAL_CHILD"

// TestAttachedProgramChild is the program of TestAttachedProgramShutsDownOnSIGTERM:
// it attaches, waits for SIGTERM with the usual signal.NotifyContext, calls
// stop() as that pattern does, then shuts down "slowly": it waits for the
// parent's go-ahead on stdin before it detaches and exits 0.
func TestAttachedProgramChild(t *testing.T) {
	if os.Getenv(envSignalChild) == "" {
		testenv.Skip(t, "only run as the child of TestAttachedProgramShutsDownOnSIGTERM")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	if err := Attach(context.Background(), "graceful", TypeServer, 7070); err != nil {
		fmt.Printf("ERROR %v\n", err)
		os.Exit(3)
	}
	fmt.Println("READY")
	<-ctx.Done()
	stop()
	fmt.Println("SHUTTING DOWN")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Printf("ERROR stdin: %v\n", err)
		os.Exit(4)
	}
	current.mu.Lock()
	attached := current.attached
	current.mu.Unlock()
	if !attached {
		fmt.Println("ERROR the SDK detached on SIGTERM by itself")
		os.Exit(6)
	}
	if err := Detach(context.Background()); err != nil {
		fmt.Printf("ERROR detach: %v\n", err)
		os.Exit(5)
	}
	fmt.Println("DONE")
	os.Exit(0)
}

// TestAttachedProgramShutsDownOnSIGTERM: an attached program that handles
// SIGTERM itself finishes its graceful shutdown and exits 0; the SDK neither
// catches nor re-raises the signal, and detaching is the program's call.
func TestAttachedProgramShutsDownOnSIGTERM(t *testing.T) {
	// A detach is answered only once the program has called stop(): a
	// signal re-raised after the detach, as the SDK once did, then meets no
	// handler and kills the program.
	stopped := make(chan struct{})
	d := newFakeDaemon(t, func(line string) (byte, string) {
		if strings.HasPrefix(line, "remove ") {
			<-stopped
		}
		return 0, "ok\n"
	})
	cmd := exec.Command(os.Args[0], "-test.run=^TestAttachedProgramChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envSignalChild+"=1", EnvSocket+"="+d.path, EnvManaged+"=", EnvName+"=")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	out := bufio.NewScanner(stdout)
	expect := func(want string) {
		t.Helper()
		if !out.Scan() {
			t.Fatalf("child ended its output before %q: %v", want, out.Err())
		}
		if got := out.Text(); got != want {
			t.Fatalf("child said %q, want %q", got, want)
		}
	}
	expect("READY")
	if got := d.next(t); !strings.HasPrefix(got, "attach server graceful 7070 ") {
		t.Fatalf("daemon got %q, want the attach", got)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expect("SHUTTING DOWN")
	close(stopped)
	if _, err := fmt.Fprintln(stdin, "go"); err != nil {
		t.Fatalf("child gone during its shutdown: %v", err)
	}
	var said []string
	for out.Scan() {
		said = append(said, out.Text())
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("attached program ended during its graceful shutdown: %v (want exit 0); it said %q", err, said)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(said) != 1 || said[0] != "DONE" {
		t.Fatalf("child said %q after the go-ahead, want DONE", said)
	}
	if got := d.next(t); got != "remove graceful" {
		t.Fatalf("daemon got %q, want the program's own detach", got)
	}
}
