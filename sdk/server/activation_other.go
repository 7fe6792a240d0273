//go:build !linux

package server

import (
	"net"
	"os"
)

// listeningTCP is the portable version: the address of a TCP listener made
// from f, without checking the socket options.
func listeningTCP(f *os.File) (*net.TCPAddr, bool) {
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, false
	}
	defer ln.Close()
	ta, ok := ln.Addr().(*net.TCPAddr)
	return ta, ok
}

// dupFile duplicates f through a listener (net.FileListener dups).
func dupFile(f *os.File) (*os.File, error) {
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	return ln.(*net.TCPListener).File()
}
