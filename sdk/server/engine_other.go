//go:build !linux

package server

import (
	"fmt"
	"net"
	"os"
	"runtime"
)

// uringConn is empty where io_uring does not exist.
type uringConn struct{}

func newURingEngine(s *Server, addr string, inherited *os.File) (engine, net.Addr, error) {
	return nil, nil, fmt.Errorf("%w: io_uring needs Linux (this is %s)", ErrEngineUnavailable, runtime.GOOS)
}

var _ engine = (*netEngine)(nil)

// listenConfig returns the net engine's listen configuration. SO_REUSEPORT
// is set only on Linux; elsewhere WithReusePort has no effect.
func listenConfig(share bool) *net.ListenConfig { return &net.ListenConfig{} }

// sendOwned is never reached without the io_uring engine (loopG stays 0).
func (c *Conn) sendOwned(msg []byte, newline bool) error { return c.send(msg, newline) }
