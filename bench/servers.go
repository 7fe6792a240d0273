//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/socketley/socketley/sdk/server"
)

// kinds returns the echo servers compared, in table order.
func kinds() []string {
	return []string{"uring", "uring/0s", "uringraw", "wrapnet", "gonet", "gnet"}
}

// kindTitle names each server in the table. A kind may carry a batch wait
// for the io_uring engine after a slash, e.g. "uring/50us" (-only only).
func kindTitle(k string) string {
	if base, bw, ok := strings.Cut(k, "/"); ok {
		if bw == "0s" {
			return kindTitle(base) + ", no batch wait"
		}
		return kindTitle(base) + ", batch wait " + bw
	}
	switch k {
	case "uring":
		return "wrapper io_uring"
	case "uringraw":
		return "wrapper io_uring, raw framing"
	case "wrapnet":
		return "wrapper net"
	case "gonet":
		return "Go net"
	case "gnet":
		return "gnet v2.9.7"
	}
	return k
}

// serve runs one echo server of kind on port until stdin reaches EOF (the
// parent exits or closes the pipe). It prints "ready" once listening.
func serve(kind string, port int) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var extra []server.Option
	if base, bw, ok := strings.Cut(kind, "/"); ok {
		d, err := time.ParseDuration(bw)
		if err != nil {
			return err
		}
		kind = base
		extra = append(extra, server.WithBatchWait(d))
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	switch kind {
	case "uring", "uringraw", "wrapnet":
		opts := []server.Option{server.WithEngine(server.EngineURing), server.WithoutAttach(), server.WithRaiseGOMAXPROCS()}
		switch kind {
		case "wrapnet":
			opts[0] = server.WithEngine(server.EngineNet)
		case "uringraw":
			opts = append(opts, server.WithFraming(server.Raw))
		}
		s, err := server.New(addr, append(opts, extra...)...)
		if err != nil {
			return err
		}
		s.OnMessage(func(c *server.Conn, msg []byte) { _ = c.Send(msg) })
		fmt.Println("ready", s.Engine())
		return s.Run(ctx)
	case "gonet":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		go func() { <-ctx.Done(); ln.Close() }()
		fmt.Println("ready")
		for {
			c, err := ln.Accept()
			if err != nil {
				return nil
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 16<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	case "gnet":
		es := &gnetEcho{booted: make(chan gnet.Engine, 1)}
		go func() {
			eng := <-es.booted
			<-ctx.Done()
			eng.Stop(context.Background())
		}()
		return gnet.Run(es, "tcp://"+addr, gnet.WithMulticore(true), gnet.WithTCPNoDelay(gnet.TCPNoDelay))
	}
	return fmt.Errorf("unknown server kind %q", kind)
}

// gnetEcho echoes every read back, the way gnet's own echo example does.
type gnetEcho struct {
	gnet.BuiltinEventEngine
	booted chan gnet.Engine
}

func (e *gnetEcho) OnBoot(eng gnet.Engine) gnet.Action {
	e.booted <- eng
	fmt.Println("ready")
	return gnet.None
}

func (e *gnetEcho) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	_, _ = c.Write(buf)
	return gnet.None
}
