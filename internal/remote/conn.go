package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// closeGrace is how long Close lets ssh end by itself (the remote side sees
// stdin's EOF, closes the daemon connection and exits) before it kills it.
const closeGrace = 2 * time.Second

// exitWait bounds the wait for ssh's exit once its stdout is closed.
const exitWait = 5 * time.Second

// maxStderr is how much of ssh's stderr is kept for the error.
const maxStderr = 8 << 10

// SSHError is a connection that ssh ended before the reply: ssh failed
// (status 255: cannot connect, host key, authentication), or the remote
// command did (socketley missing there, its daemon unreachable).
type SSHError struct {
	// Host is the address given to -H.
	Host Host
	// Status is ssh's exit status (-1 when it was killed by a signal or
	// did not start).
	Status int
	// Stderr is the end of what ssh and the remote command wrote to stderr.
	Stderr string
	// Err is the error of starting or waiting for ssh, if any.
	Err error
}

// Error says what failed on which host, with ssh's own words.
func (e *SSHError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cannot reach the socketley daemon on %s: ", e.Host)
	switch {
	case e.Err != nil && e.Status == -1:
		fmt.Fprintf(&b, "ssh: %v", e.Err)
	case e.Status == 255:
		b.WriteString("ssh failed (status 255)")
	case e.Status == 127:
		b.WriteString("the remote command was not found (status 127): is socketley installed there, in the PATH of a non-interactive ssh session?")
	case e.Status == 0:
		b.WriteString("the connection ended before the daemon's reply")
	default:
		fmt.Fprintf(&b, "the remote socketley dial-stdio failed (status %d)", e.Status)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString(":\n  " + strings.ReplaceAll(s, "\n", "\n  "))
	}
	return b.String()
}

// Unwrap returns Err.
func (e *SSHError) Unwrap() error { return e.Err }

// Is matches ErrSSH.
func (e *SSHError) Is(target error) bool { return target == ErrSSH }

// tail keeps the last maxStderr bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > maxStderr {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-maxStderr:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Conn is the control connection to a remote daemon: the stdin and stdout
// of an ssh process running socketley dial-stdio there. It implements
// net.Conn (deadlines included: the pipes are pollable files) and
// CloseWrite. Close always reaps the ssh process.
type Conn struct {
	host   Host
	cmd    *exec.Cmd
	w      *os.File // ssh's stdin
	r      *os.File // ssh's stdout
	stderr *tail
	done   chan struct{} // closed once ssh has been waited for (ProcessState set)

	closeOnce sync.Once
	wclosed   sync.Once
}

// Dial starts ssh (the program sshProg, "" for $SOCKETLEY_SSH or "ssh")
// running the remote words on h, and returns the connection over its
// stdin and stdout. The process outlives ctx: the connection's deadlines
// and Close end it. Extra environment for ssh is none: it runs with the
// CLI's own.
func Dial(ctx context.Context, sshProg string, h Host, words []string) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if sshProg == "" {
		sshProg = os.Getenv(EnvSSH)
	}
	if sshProg == "" {
		sshProg = "ssh"
	}
	path, err := exec.LookPath(sshProg)
	if err != nil {
		return nil, &SSHError{Host: h, Status: -1, Err: fmt.Errorf("%w (install the OpenSSH client, or set $%s to the ssh program)", err, EnvSSH)}
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("ssh stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_ = inR.Close()
		_ = inW.Close()
		return nil, fmt.Errorf("ssh stdout pipe: %w", err)
	}
	c := &Conn{host: h, w: inW, r: outR, stderr: &tail{}, done: make(chan struct{})}
	c.cmd = exec.Command(path, h.SSHArgs(words)...)
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = inR, outW, c.stderr
	err = c.cmd.Start()
	_ = inR.Close()
	_ = outW.Close()
	if err != nil {
		_ = inW.Close()
		_ = outR.Close()
		return nil, &SSHError{Host: h, Status: -1, Err: err}
	}
	go func() {
		_ = c.cmd.Wait() // its status is read from ProcessState
		close(c.done)
	}()
	return c, nil
}

// exitError waits (up to exitWait, then kills ssh) for ssh to exit and
// returns the error that explains a connection ended early, or nil when
// ssh exited 0 with nothing on stderr.
func (c *Conn) exitError() error {
	select {
	case <-c.done:
	case <-time.After(exitWait):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	status := c.cmd.ProcessState.ExitCode()
	if status == 0 {
		return nil
	}
	return &SSHError{Host: c.host, Status: status, Stderr: c.stderr.String()}
}

// Read reads from the remote daemon. The end of the stream is io.EOF when
// ssh exits 0, else an *SSHError with ssh's stderr.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if errors.Is(err, io.EOF) {
		if xerr := c.exitError(); xerr != nil {
			return n, xerr
		}
	}
	return n, err
}

// Write writes to the remote daemon; a write to an ssh that has exited
// returns an *SSHError.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if errors.Is(err, syscall.EPIPE) {
		if xerr := c.exitError(); xerr != nil {
			return n, xerr
		}
	}
	return n, err
}

// CloseWrite closes ssh's stdin: the remote dial-stdio half-closes its
// connection to the daemon.
func (c *Conn) CloseWrite() error {
	var err error
	c.wclosed.Do(func() { err = c.w.Close() })
	return err
}

// Close closes both pipes, gives ssh closeGrace to end by itself and kills
// it after that; it returns once ssh has been reaped.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.CloseWrite()
		_ = c.r.Close()
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-c.done:
		case <-t.C:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	return nil
}

// Pid returns the ssh process's pid (for tests that check it is reaped).
func (c *Conn) Pid() int { return c.cmd.Process.Pid }

// addr is the address of either end: the -H address.
type addr struct{ s string }

func (a addr) Network() string { return "ssh" }
func (a addr) String() string  { return a.s }

// LocalAddr returns the -H address.
func (c *Conn) LocalAddr() net.Addr { return addr{c.host.String()} }

// RemoteAddr returns the -H address.
func (c *Conn) RemoteAddr() net.Addr { return addr{c.host.String()} }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	return errors.Join(c.r.SetReadDeadline(t), c.w.SetWriteDeadline(t))
}

// SetReadDeadline sets the deadline of Read.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.r.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of Write.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.w.SetWriteDeadline(t) }

var _ net.Conn = (*Conn)(nil)
