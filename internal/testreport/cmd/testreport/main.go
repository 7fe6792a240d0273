// Command testreport reads `go test -json` on stdin, prints package results
// and the output of failed tests as they arrive, and ends with a summary:
// every skipped test with its reason and, with -stats, per package the number
// of test runs, failures and the failing tests. It exits 1 when a test or a
// package failed, 2 when it could not read its input.
//
//	go test -json ./... | go run ./internal/testreport/cmd/testreport [-stats] [-skips FILE]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/socketley/socketley/internal/testreport"
)

func main() {
	stats := flag.Bool("stats", false, "print runs, failures and failing tests per package")
	skips := flag.String("skips", "", "also write the skipped tests to `FILE`")
	flag.Parse()
	rep, err := testreport.Read(os.Stdin, testreport.Options{Echo: os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if *stats {
		fmt.Println()
		rep.WriteStats(os.Stdout)
	}
	if len(rep.Skips) > 0 {
		fmt.Printf("\nskipped tests (%d):\n", len(rep.Skips))
		rep.WriteSkips(os.Stdout)
	}
	if *skips != "" {
		f, err := os.Create(*skips)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(2)
		}
		rep.WriteSkips(f)
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(2)
		}
	}
	if len(rep.Packages) == 0 {
		fmt.Fprintln(os.Stderr, "testreport: no test events read (did go test run with -json?)")
		os.Exit(2)
	}
	if rep.Failed() {
		fmt.Printf("\n%d failed test runs:\n", len(rep.Failures))
		for _, f := range rep.Failures {
			fmt.Printf("  FAIL %s\n", f.PackageTest)
		}
		os.Exit(1)
	}
}
