package testenv

import (
	"bufio"
	"net"
	"path/filepath"
	"testing"

	"github.com/socketley/socketley/internal/wire"
)

// FakeDaemon listens on a new unix socket in a test directory, as the
// daemon's control socket, and answers every request line of every
// connection with the code and payload reply returns for it (reply runs on
// the connection's goroutine). It returns the socket path; the listener
// closes when the test ends.
func FakeDaemon(t testing.TB, reply func(line string) (code byte, payload []byte)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "daemon.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := wire.ReadLine(r)
					if err != nil {
						return
					}
					code, payload := reply(line)
					if wire.WriteReply(c, code, payload) != nil {
						return
					}
				}
			}()
		}
	}()
	return sock
}
