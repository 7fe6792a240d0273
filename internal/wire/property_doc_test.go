package wire

import (
	"regexp"
	"strings"
	"testing"
)

// TestPropertyDocsTable checks that the allow-list table of docs/cli.md
// has one row per PropertyRules entry, with its syntax, its live column and
// whether some value is root-only,
// and no row for a key that is not allowed.
func TestPropertyDocsTable(t *testing.T) {
	sec := cliDocSection(t, "### `-p`, `--property`")
	rowRE := regexp.MustCompile("(?m)^\\| `([A-Za-z]+)` \\| ([^|]+) \\| [^|]+ \\| ([^|]+) \\| ([^|]+) \\|$")
	rows := map[string][3]string{}
	for _, m := range rowRE.FindAllStringSubmatch(sec, -1) {
		rows[m[1]] = [3]string{strings.TrimSpace(m[2]), strings.TrimSpace(m[3]), strings.TrimSpace(m[4])}
	}
	for _, r := range PropertyRules() {
		t.Run(r.Key, func(t *testing.T) {
			row, ok := rows[r.Key]
			if !ok {
				t.Fatalf("docs/cli.md: no row for %s", r.Key)
			}
			delete(rows, r.Key)
			if row[0] != r.Syntax() {
				t.Errorf("docs/cli.md: %s accepts %q, the docs say %q", r.Key, r.Syntax(), row[0])
			}
			if live := strings.Contains(row[1], "at once"); live != r.Live {
				t.Errorf("docs/cli.md: %s live=%v, the docs say %q", r.Key, r.Live, row[1])
			}
			if rootOnly := row[2] != "—"; rootOnly != (r.Privileged != nil) {
				t.Errorf("docs/cli.md: %s has a root-only value: %v, the docs say %q", r.Key, r.Privileged != nil, row[2])
			}
		})
	}
	for k := range rows {
		t.Errorf("docs/cli.md lists %s, which is not in wire.PropertyRules", k)
	}
}
