package manifest

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/socketley/socketley/internal/wire"
)

// TestSchemaMatchesRuntime: docs/socketley.schema.json, which editors use
// to check a manifest, has exactly the fields Parse reads, the limit keys,
// the states and restart policies, and the name rule of wire.CheckName.
func TestSchemaMatchesRuntime(t *testing.T) {
	b, err := os.ReadFile("../../docs/socketley.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	type object struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	var schema struct {
		object
		Defs map[string]json.RawMessage `json:"$defs"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	var rt object
	if err := json.Unmarshal(schema.Defs["runtime"], &rt); err != nil {
		t.Fatal(err)
	}
	var fields []string
	typ := reflect.TypeFor[Runtime]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		fields = append(fields, name)
	}
	if got := sortedKeysRaw(rt.Properties); !slices.Equal(got, sorted(fields)) {
		t.Errorf("schema runtime fields %v\nmanifest.Runtime   %v", got, sorted(fields))
	}
	if !slices.Equal(sorted(fields), sorted(fieldOrder())) {
		t.Errorf("fieldOrder %v is not Runtime's fields %v", fieldOrder(), fields)
	}
	var limits object
	if err := json.Unmarshal(rt.Properties["limits"], &limits); err != nil {
		t.Fatal(err)
	}
	if got := sortedKeysRaw(limits.Properties); !slices.Equal(got, sorted(LimitKeys())) {
		t.Errorf("schema limits %v, want %v", got, LimitKeys())
	}
	var enum struct {
		Enum    []string `json:"enum"`
		Pattern string   `json:"pattern"`
	}
	_ = json.Unmarshal(rt.Properties["state"], &enum)
	if !slices.Equal(enum.Enum, []string{StateRunning, StateStopped}) {
		t.Errorf("schema states %v", enum.Enum)
	}
	_ = json.Unmarshal(rt.Properties["restart"], &enum)
	for _, p := range enum.Enum {
		if err := (&wire.AddSpec{Name: "x", Path: "/x", Restart: wire.RestartPolicy(p)}).Check(); err != nil {
			t.Errorf("schema restart %q: %v", p, err)
		}
	}
	_ = json.Unmarshal(rt.Properties["name"], &enum)
	re := regexp.MustCompile(enum.Pattern)
	for _, name := range []string{"api", "a.b_c-d", "9", "", "-a", "a b", "é", strings.Repeat("a", 64), strings.Repeat("a", 65), "a@b"} {
		if re.MatchString(name) != (wire.CheckName(name) == nil) {
			t.Errorf("name %q: schema says %v, CheckName %v", name, re.MatchString(name), wire.CheckName(name))
		}
	}
}

func sortedKeysRaw(m map[string]json.RawMessage) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return sorted(keys)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
