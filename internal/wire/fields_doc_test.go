package wire

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestRuntimeFieldsDocumented: every JSON field of Runtime has a row in
// the "JSON fields (stable)" table of docs/cli.md.
func TestRuntimeFieldsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "### JSON fields (stable)")
	if start < 0 {
		t.Fatal("docs/cli.md has no JSON fields section")
	}
	sec := doc[start:]
	if end := strings.Index(sec, "\n## "); end >= 0 {
		sec = sec[:end]
	}
	rt := reflect.TypeFor[Runtime]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		if !strings.Contains(sec, "`"+name+"`") {
			t.Errorf("docs/cli.md, JSON fields: no row for %s (wire.Runtime.%s)", name, rt.Field(i).Name)
		}
	}
}
