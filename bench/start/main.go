// Command start measures the CLI's own start-up cost side by side with a Go
// hello-world, both built here with the same toolchain and flags
// (CGO_ENABLED=0 -trimpath -ldflags "-s -w", as make build does), run in
// turn (A B A B …) so that a drift of the machine's speed hits both. It
// prints the medians of wall time and of CPU time (user + system, from the
// kernel's accounting of each child) and the median of the per-pair ratios,
// next to the goal (≤ 1.5× hello-world).
//
//	go -C bench run ./start [-n 200] [-cmd "version --socket /nonexistent"]
//
// make bench-start runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

const hello = `package main

import "fmt"

func main() { fmt.Println("hello") }
`

func main() {
	n := flag.Int("n", 200, "runs of each command")
	var cmds []string
	flag.Func("cmd", "socketley arguments to time (repeatable; default: --version, and version with no daemon)", func(s string) error {
		cmds = append(cmds, s)
		return nil
	})
	flag.Parse()
	if len(cmds) == 0 {
		cmds = []string{"--version", "version --socket /nonexistent/socketley.sock"}
	}

	dir, err := os.MkdirTemp("", "bench-start-")
	check(err)
	defer os.RemoveAll(dir)
	sk := filepath.Join(dir, "socketley")
	hw := filepath.Join(dir, "hello")
	build(sk, "..", "./cmd/socketley")
	check(os.WriteFile(filepath.Join(dir, "main.go"), []byte(hello), 0o644))
	check(os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.24\n"), 0o644))
	build(hw, dir, ".")

	fi, _ := os.Stat(sk)
	hi, _ := os.Stat(hw)
	fmt.Printf("%d runs each, in turn with a Go hello-world; binaries %.1f MB and %.1f MB\n", *n, float64(fi.Size())/1e6, float64(hi.Size())/1e6)
	fmt.Printf("%-48s %9s %9s %11s %11s\n", "socketley …", "wall ms", "cpu ms", "wall ratio", "cpu ratio")
	for _, args := range cmds {
		a := append([]string{sk}, strings.Fields(args)...)
		b := []string{hw}
		for range 5 { // warm the page cache
			run(a)
			run(b)
		}
		var aw, bw, ac, bc, rw, rc []float64
		for range *n {
			w1, c1 := run(a)
			w2, c2 := run(b)
			aw, bw, ac, bc = append(aw, w1), append(bw, w2), append(ac, c1), append(bc, c2)
			rw = append(rw, w1/w2)
			if c2 > 0 {
				rc = append(rc, c1/c2)
			}
		}
		fmt.Printf("%-48s %9.2f %9.2f %10.2f× %10.2f×\n", args, median(aw), median(ac), median(rw), median(rc))
		fmt.Printf("%-48s %9.2f %9.2f\n", "  Go hello-world, same pairs", median(bw), median(bc))
	}
	fmt.Println("goal: ≤ 1.5× hello-world (ratios are medians of the per-pair ratios)")
}

// build compiles pkg in dir into out as make build does.
func build(out, dir, pkg string) {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	check(cmd.Run())
}

// run starts argv once and returns its wall and CPU time in milliseconds.
func run(argv []string) (wall, cpu float64) {
	cmd := exec.Command(argv[0], argv[1:]...)
	begin := time.Now()
	_ = cmd.Run() // version exits 0; a refused socket is part of what is timed
	wall = float64(time.Since(begin)) / 1e6
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
	return wall, cpu
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/start:", err)
		os.Exit(1)
	}
}
