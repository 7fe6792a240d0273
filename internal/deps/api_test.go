package deps

import (
	"encoding/json"
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// publicPackages are the packages a program outside the module imports.
var publicPackages = []string{mod + "sdk", mod + "sdk/server"}

// TestPublicAPINamesNoInternalType: every type the exported API of the
// public packages uses (in a signature, a field, a method, a constant or a
// variable, followed into the types it reaches) is one a user can name:
// a type of the public packages, of another module, or an internal type
// that package sdk re-exports as an alias (type Runtime = wire.Runtime). A
// function that takes an internal type no alias names (as Client.Do once
// took wire.Request) fails it.
func TestPublicAPINamesNoInternalType(t *testing.T) {
	cmd := exec.Command("go", append([]string{"list", "-export", "-deps", "-json=ImportPath,Export"}, publicPackages...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export: %v", err)
	}
	exports := map[string]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
	}
	imp := importer.ForCompiler(token.NewFileSet(), "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	pkgs := map[string]*types.Package{}
	for _, p := range publicPackages {
		pkg, err := imp.Import(p)
		if err != nil {
			t.Fatal(err)
		}
		pkgs[p] = pkg
	}

	// The internal types a user can name: those sdk aliases.
	aliased := map[*types.TypeName]string{}
	sdk := pkgs[mod+"sdk"]
	for _, name := range sdk.Scope().Names() {
		if tn, ok := sdk.Scope().Lookup(name).(*types.TypeName); ok && tn.Exported() && tn.IsAlias() {
			if n, ok := types.Unalias(tn.Type()).(*types.Named); ok {
				aliased[n.Obj()] = "sdk." + name
			}
		}
	}

	w := &apiWalker{t: t, aliased: aliased, seen: map[types.Type]bool{}}
	for _, p := range publicPackages {
		scope := pkgs[p].Scope()
		for _, name := range scope.Names() {
			obj := scope.Lookup(name)
			if !obj.Exported() {
				continue
			}
			w.walk(obj.Type(), strings.TrimPrefix(p, mod)+"."+name)
		}
	}
	if len(aliased) == 0 || w.named == 0 {
		t.Fatalf("found %d aliases and %d named types: the check is not looking at the API", len(aliased), w.named)
	}
}

// apiWalker follows the types of an exported API.
type apiWalker struct {
	t       *testing.T
	aliased map[*types.TypeName]string
	seen    map[types.Type]bool
	named   int
}

func (w *apiWalker) walk(typ types.Type, where string) {
	if w.seen[typ] {
		return
	}
	w.seen[typ] = true
	switch x := typ.(type) {
	case *types.Alias:
		w.walk(types.Unalias(x), where)
	case *types.Named:
		w.named++
		obj := x.Obj()
		if obj.Pkg() == nil || !strings.HasPrefix(obj.Pkg().Path(), mod) {
			return // predeclared (error) or another module's
		}
		if strings.Contains(obj.Pkg().Path(), "/internal/") {
			if _, ok := w.aliased[obj]; !ok {
				w.t.Errorf("%s uses %s.%s, an internal type that sdk does not re-export: a user cannot name it", where, obj.Pkg().Path(), obj.Name())
			}
		} else if !obj.Exported() {
			return // unexported type of a public package: its fields are not API
		}
		for i := range x.NumMethods() {
			if m := x.Method(i); m.Exported() {
				w.walk(m.Type(), where+"."+m.Name())
			}
		}
		w.walk(x.Underlying(), where)
	case *types.Struct:
		for i := range x.NumFields() {
			if f := x.Field(i); f.Exported() {
				w.walk(f.Type(), where+"."+f.Name())
			}
		}
	case *types.Signature:
		for _, tup := range []*types.Tuple{x.Params(), x.Results()} {
			for i := range tup.Len() {
				w.walk(tup.At(i).Type(), where)
			}
		}
	case *types.Pointer:
		w.walk(x.Elem(), where)
	case *types.Slice:
		w.walk(x.Elem(), where)
	case *types.Array:
		w.walk(x.Elem(), where)
	case *types.Map:
		w.walk(x.Key(), where)
		w.walk(x.Elem(), where)
	case *types.Chan:
		w.walk(x.Elem(), where)
	case *types.Interface:
		for i := range x.NumMethods() {
			if m := x.Method(i); m.Exported() {
				w.walk(m.Type(), where+"."+m.Name())
			}
		}
	}
}
