package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"

	"github.com/socketley/socketley/sdk/server"
)

// A line echo server on a free port, and a client that exchanges one line
// with it. A real program passes a context that SIGTERM cancels
// (signal.NotifyContext); here the example cancels it itself.
func Example() {
	srv, err := server.New("127.0.0.1:0") // port 0: any free port; srv.Port() tells which
	if err != nil {
		fmt.Println(err) // a bad address, or the port in use
		return
	}
	srv.OnMessage(func(c *server.Conn, msg []byte) {
		// msg is one line without its '\n'; Send copies and adds the '\n'.
		_ = c.Send(append([]byte("echo: "), msg...))
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	conn, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Fprintln(conn, "hello")
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(reply)
	conn.Close()

	cancel() // Run shuts down gracefully and returns
	fmt.Println("stopped:", <-done)
	// Output:
	// echo: hello
	// stopped: <nil>
}
