//go:build explore

package units

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

func TestExplore(t *testing.T) {
	ctx := context.Background()
	c, err := Dial(ctx, User)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// raw signal printer
	bus, err := dialBus(ctx, User, c.addr, godbus.WithSignalHandler(godbus.NewSequentialSignalHandler()))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *godbus.Signal, 100)
	bus.Signal(ch)
	bus.AddMatchSignal(godbus.WithMatchSender(busName))
	bus.Object(busName, managerPath).Call(managerIface+".Subscribe", 0)
	t0 := time.Now()
	go func() {
		for s := range ch {
			if name, ok := runtimeFromPath(s.Path); ok || s.Path == managerPath {
				_ = name
				body := fmt.Sprint(s.Body)
				if len(body) > 400 {
					body = body[:400]
				}
				if s.Name == propertiesIface+".PropertiesChanged" {
					m := s.Body[1].(map[string]godbus.Variant)
					keys := ""
					for k, v := range m {
						if k == "ActiveState" || k == "SubState" || k == "MainPID" || k == "NRestarts" || k == "Result" || k == "ExecMainCode" || k == "ExecMainStatus" {
							keys += fmt.Sprintf("%s=%v ", k, v.Value())
						}
					}
					fmt.Printf("%6dms %s %s %s inval=%v\n", time.Since(t0).Milliseconds(), s.Path, s.Body[0], keys, s.Body[2])
				} else {
					fmt.Printf("%6dms %s %s\n", time.Since(t0).Milliseconds(), s.Name, body)
				}
			}
		}
	}()
	err = c.Start(ctx, Spec{Name: "ex1", Path: "/bin/sleep", Args: []string{"100"}, Env: []string{"A=B"}, Restart: "on-failure", RestartSec: 100 * time.Millisecond})
	fmt.Println("start:", err)
	st, err := c.Status(ctx, "ex1")
	fmt.Printf("status: %+v %v\n", st, err)
	props, _ := c.sd.GetAllPropertiesContext(ctx, Name("ex1"))
	fmt.Println("nprops", len(props), props["Environment"], props["Type"])
	fmt.Println("--- kill")
	syscall.Kill(st.MainPID, 9)
	time.Sleep(500 * time.Millisecond)
	st, err = c.Status(ctx, "ex1")
	fmt.Printf("status: %+v %v\n", st, err)
	fmt.Println("--- stop")
	fmt.Println(c.Stop(ctx, "ex1"))
	time.Sleep(200 * time.Millisecond)
	_, err = c.Status(ctx, "ex1")
	fmt.Println("status after stop:", err)
	fmt.Println("--- exec fail")
	os.WriteFile("/tmp/explore/noexec", []byte("#!/bin/sh\n"), 0o644)
	err = c.Start(ctx, Spec{Name: "ex2", Path: "/tmp/explore/noexec", Restart: "on-failure", RestartSec: 100 * time.Millisecond})
	fmt.Printf("start noexec: %v %+v\n", err, err)
	time.Sleep(300 * time.Millisecond)
	st, err = c.Status(ctx, "ex2")
	fmt.Printf("status: %+v %v\n", st, err)
	fmt.Println("--- crash loop")
	err = c.Start(ctx, Spec{Name: "ex3", Path: "/bin/sh", Args: []string{"-c", "exit 1"}, Restart: "on-failure", RestartSec: 100 * time.Millisecond, StartLimitBurst: 3, StartLimitInterval: 10 * time.Second})
	fmt.Println("start ex3:", err)
	time.Sleep(1500 * time.Millisecond)
	st, err = c.Status(ctx, "ex3")
	fmt.Printf("status: %+v %v\n", st, err)
	err = c.Start(ctx, Spec{Name: "ex3", Path: "/bin/sleep", Args: []string{"10"}})
	fmt.Println("restart ex3:", err)
	st, err = c.Status(ctx, "ex3")
	fmt.Printf("status: %+v %v\n", st, err)
	c.Stop(ctx, "ex3")
	time.Sleep(300 * time.Millisecond)
}
