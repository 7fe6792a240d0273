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
	sec := cliDocSection(t, "### JSON fields (stable)")
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

// cliDocSection returns the section of docs/cli.md under heading, up to
// the next heading of its level or above.
func cliDocSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "\n"+heading+"\n")
	if start < 0 {
		t.Fatalf("docs/cli.md has no section %q", heading)
	}
	sec := doc[start+1:]
	level := heading[:strings.IndexByte(heading, ' ')+1] // "### "
	for i := 1; i < len(sec); i++ {
		if sec[i-1] == '\n' && strings.HasPrefix(sec[i:], "#") {
			h := sec[i:]
			if n := strings.IndexByte(h, ' '); n > 0 && n+1 <= len(level) {
				return sec[:i]
			}
		}
	}
	return sec
}
