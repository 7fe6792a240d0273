package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/socketley/socketley/sdk"
)

// A program reports itself to the daemon once it serves, and detaches when
// it stops. The examples run against a stand-in daemon (startFakeDaemon),
// which prints what it gets; a real program finds the real daemon by
// itself.
func ExampleAttach() {
	daemon := startFakeDaemon()
	defer daemon.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Under socketley (sdk.Managed()) this re-attaches the unit's entry;
	// standalone it adds an entry of mode attach for this process.
	if err := sdk.Attach(ctx, "echo", sdk.TypeServer, 7070); err != nil {
		fmt.Println("not attached, serving anyway:", err)
		return
	}
	fmt.Println("attached")

	// ... serve until SIGTERM, which the program handles itself ...

	if err := sdk.Detach(ctx); err != nil {
		fmt.Println("detach:", err)
	}
	// Output:
	// daemon: attach server echo 7070
	// attached
	// daemon: remove echo
}

// A Client drives the daemon as the CLI does: register and start a
// managed runtime, list what runs, and tell a refusal's kind with
// errors.Is.
func ExampleClient() {
	daemon := startFakeDaemon()
	defer daemon.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := sdk.NewClient(daemon.Socket()) // "": $SOCKETLEY_SOCKET, else the system, else the user daemon

	rt, err := c.Add(ctx, sdk.AddSpec{
		Name:    "web",
		Path:    "/usr/local/bin/web",
		Args:    []string{"-port", "8080"},
		Restart: sdk.RestartAlways,
		Start:   true,
	}, sdk.StartOptions{Wait: true})
	if err != nil {
		fmt.Println("add:", err)
		return
	}
	fmt.Println(rt.Name, rt.Status, rt.Unit, rt.PID)

	rts, err := c.List(ctx)
	if err != nil {
		fmt.Println("ls:", err)
		return
	}
	for _, r := range rts {
		fmt.Println(r.Name, r.Mode, r.Status == sdk.StatusRunning)
	}

	_, err = c.Show(ctx, "nope")
	var re *sdk.ReplyError
	if errors.Is(err, sdk.ErrNotFound) && errors.As(err, &re) {
		fmt.Println(re.Class, "-", re.Message)
	}
	// Output:
	// daemon: add web
	// web running socketley-web.service 4242
	// daemon: ls
	// web unit true
	// daemon: show nope
	// not-found - unknown runtime "nope" (see `socketley ls`)
}
