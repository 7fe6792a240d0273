package deps

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/socketley/socketley/"

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// listAll returns every package of the module (tests excluded) with its
// direct imports and all its dependencies.
func listAll(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", mod+"...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages: run from the module", len(pkgs))
	}
	return pkgs
}

// TestPackageGraph guards the layers (docs/architecture.md): the SDK never
// reaches the daemon or the CLI; only units talks D-Bus; the wire contract
// and the units layer depend on none of our other packages; the control
// client depends on wire only and serves the SDK and the CLI alone; the
// daemon's packages never import the CLI or the SDK; the client CLI never
// links the daemon's packages (cmd → cli → {sdk, control, wire}, sdk →
// control → wire, daemon → manager → {units, wire}); nothing pays for
// crypto/tls; no package links client_golang (tests may).
func TestPackageGraph(t *testing.T) {
	rules := []struct {
		name    string
		applies func(p string) bool
		deps    bool // check all dependencies (else direct imports)
		banned  func(imp string) bool
	}{
		{"the SDK links neither the daemon nor the CLI",
			func(p string) bool { return strings.HasPrefix(p, mod+"sdk") }, true,
			func(i string) bool {
				return i == mod+"manager" || i == mod+"units" || strings.HasPrefix(i, mod+"internal/cli")
			}},
		{"only units imports D-Bus (godbus, go-systemd/dbus)",
			func(p string) bool { return p != mod+"units" }, false,
			func(i string) bool {
				return strings.HasPrefix(i, "github.com/godbus/dbus") || i == "github.com/coreos/go-systemd/v22/dbus"
			}},
		{"internal/wire and units depend on none of our packages but wire, paths and proc",
			func(p string) bool { return p == mod+"internal/wire" || p == mod+"units" }, true,
			func(i string) bool {
				return strings.HasPrefix(i, mod) && i != mod+"internal/wire" && i != mod+"internal/paths" && i != mod+"internal/proc"
			}},
		{"internal/control (the client of sdk and CLI) depends on none of our packages but wire",
			func(p string) bool { return p == mod+"internal/control" }, true,
			func(i string) bool { return strings.HasPrefix(i, mod) && i != mod+"internal/wire" }},
		{"only the SDK and the CLI import internal/control",
			func(p string) bool {
				return !strings.HasPrefix(p, mod+"sdk") && p != mod+"internal/cli"
			}, false,
			func(i string) bool { return i == mod+"internal/control" }},
		{"the daemon's packages import neither the CLI nor the SDK",
			func(p string) bool { return p == mod+"manager" || p == mod+"units" }, true,
			func(i string) bool {
				return strings.HasPrefix(i, mod+"internal/cli") || strings.HasPrefix(i, mod+"sdk")
			}},
		{"the client CLI links neither the daemon nor D-Bus (internal/daemon is added by cmd/socketley)",
			func(p string) bool { return p == mod+"internal/cli" || p == mod+"internal/format" }, true,
			func(i string) bool {
				return i == mod+"manager" || i == mod+"units" || i == mod+"internal/daemon" ||
					strings.HasPrefix(i, "github.com/godbus/") || strings.HasPrefix(i, "github.com/coreos/go-systemd")
			}},
		{"only the binary and the doc generator join the CLI and the daemon",
			func(p string) bool {
				return p != mod+"cmd/socketley" && p != mod+"internal/tools/gendocs" && p != mod+"internal/daemon"
			}, false,
			func(i string) bool { return i == mod+"internal/daemon" }},
		{"nothing links client_golang (its package init, with protobuf and net/http, would cost every CLI start; internal/metrics writes the format, tests check it with client_golang)",
			func(p string) bool { return strings.HasPrefix(p, mod) }, true,
			func(i string) bool {
				return strings.HasPrefix(i, "github.com/prometheus/") || strings.HasPrefix(i, "google.golang.org/protobuf") || i == "net/http"
			}},
		{"nothing links crypto/tls (go-systemd's activation package pulls it in: internal/activation replaces it)",
			func(p string) bool { return strings.HasPrefix(p, mod+"cmd/") || strings.HasPrefix(p, mod+"sdk") }, true,
			func(i string) bool { return i == "crypto/tls" }},
	}
	pkgs := listAll(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			checked := 0
			for _, p := range pkgs {
				if !r.applies(p.ImportPath) {
					continue
				}
				checked++
				list := p.Imports
				if r.deps {
					list = p.Deps
				}
				for _, i := range list {
					if r.banned(i) {
						t.Errorf("%s imports %s", strings.TrimPrefix(p.ImportPath, mod), i)
					}
				}
			}
			if checked == 0 {
				t.Fatal("the rule applies to no package: the module layout changed; update the rule")
			}
		})
	}
}
