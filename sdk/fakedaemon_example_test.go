package sdk_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/socketley/socketley/internal/wire"
	"github.com/socketley/socketley/sdk"
)

// fakeDaemon is a stand-in for the socketley daemon that the examples run
// against: a unix socket in a temporary directory that speaks the daemon's
// protocol (docs/protocol.md), the C++ line format that Attach and Detach
// send and the JSON form of the Client, and keeps a registry in memory. It
// prints each request it gets as "daemon: ...", before it replies.
type fakeDaemon struct {
	dir string
	ln  net.Listener
	env map[string]*string // the environment to restore on Close

	mu  sync.Mutex
	rts map[string]wire.Runtime
}

// startFakeDaemon starts the stand-in and points $SOCKETLEY_SOCKET at it, as
// the real daemon does for its units (Attach reads it; a Client may too).
func startFakeDaemon() *fakeDaemon {
	dir, err := os.MkdirTemp("", "socketley-example")
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "socketley.sock"))
	if err != nil {
		panic(err)
	}
	d := &fakeDaemon{dir: dir, ln: ln, env: map[string]*string{}, rts: map[string]wire.Runtime{}}
	d.setenv(sdk.EnvSocket, d.Socket())
	d.setenv(sdk.EnvManaged, "")
	d.setenv(sdk.EnvName, "")
	go d.serve()
	return d
}

// Socket is the path of the stand-in's control socket.
func (d *fakeDaemon) Socket() string { return d.ln.Addr().String() }

// Close stops the stand-in and restores the environment.
func (d *fakeDaemon) Close() {
	_ = d.ln.Close()
	_ = os.RemoveAll(d.dir)
	for k, v := range d.env {
		if v == nil {
			_ = os.Unsetenv(k)
		} else {
			_ = os.Setenv(k, *v)
		}
	}
}

func (d *fakeDaemon) setenv(k, v string) {
	if old, ok := os.LookupEnv(k); ok {
		d.env[k] = &old
	} else {
		d.env[k] = nil
	}
	_ = os.Setenv(k, v)
}

func (d *fakeDaemon) serve() {
	for {
		c, err := d.ln.Accept()
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
				var code byte
				var payload []byte
				if strings.HasPrefix(line, "{") {
					code, payload = d.json(line)
				} else {
					code, payload = d.line(line)
				}
				if wire.WriteReply(c, code, payload) != nil {
					return
				}
			}
		}()
	}
}

// line answers the C++ line format: attach TYPE NAME PORT --pid PID, and
// remove NAME (a detach).
func (d *fakeDaemon) line(line string) (byte, []byte) {
	w := strings.Fields(line)
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case len(w) >= 4 && w[0] == wire.CmdAttach:
		fmt.Println("daemon:", strings.Join(w[:4], " "))
		var port int
		fmt.Sscan(w[3], &port)
		d.rts[w[2]] = wire.Runtime{Name: w[2], Status: wire.StatusRunning, Mode: wire.ModeAttach, Type: w[1], Port: port}
		return wire.CodeOK, []byte("attached " + w[2] + "\n")
	case len(w) == 2 && w[0] == wire.CmdRemove:
		fmt.Println("daemon:", line)
		delete(d.rts, w[1])
		return wire.CodeOK, []byte("detached " + w[1] + "\n")
	}
	return wire.CodeInvalid, []byte("unknown command\n")
}

// json answers the JSON form: add, ls and show.
func (d *fakeDaemon) json(line string) (byte, []byte) {
	var req wire.Request
	if err := json.Unmarshal([]byte(line), &req); err != nil {
		return reply(nil, wire.Errorf(wire.ErrInvalid, "bad request: %v", err))
	}
	words := append([]string{req.Cmd}, req.Names...)
	if req.Add != nil {
		words = append(words, req.Add.Name)
	}
	fmt.Println("daemon:", strings.Join(words, " "))
	d.mu.Lock()
	defer d.mu.Unlock()
	switch req.Cmd {
	case wire.CmdAdd:
		a := req.Add
		rt := wire.Runtime{Name: a.Name, Unit: wire.UnitName(a.Name), Managed: true, Mode: wire.ModeUnit,
			Status: wire.StatusCreated, Path: a.Path, Args: a.Args, Restart: a.Restart}
		if a.Start {
			rt.Status, rt.PID = wire.StatusRunning, 4242
		}
		d.rts[a.Name] = rt
		return reply([]wire.Runtime{rt}, nil)
	case wire.CmdList:
		var rts []wire.Runtime
		for _, rt := range d.rts {
			rts = append(rts, rt)
		}
		return reply(rts, nil)
	case wire.CmdShow:
		var rts []wire.Runtime
		for _, n := range req.Names {
			rt, ok := d.rts[n]
			if !ok {
				return reply(nil, wire.Errorf(wire.ErrNotFound, "unknown runtime %q (see `socketley ls`)", n))
			}
			rts = append(rts, rt)
		}
		return reply(rts, nil)
	}
	return reply(nil, wire.Errorf(wire.ErrInvalid, "the example daemon does not do %s", req.Cmd))
}

// reply encodes a JSON reply as the daemon does: the runtimes, or the
// error with its class and the class's code.
func reply(rts []wire.Runtime, err error) (byte, []byte) {
	res := wire.Result{Runtimes: rts}
	if err != nil {
		res.Error, res.Class = err.Error(), wire.ClassOf(err)
	}
	b, _ := json.Marshal(res)
	return res.Class.Code(), b
}
