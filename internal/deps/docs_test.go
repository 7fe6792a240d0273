package deps

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestDocLinks: every relative link in the Markdown files, and every
// docs/*.md a Go comment names, points at a file that exists; a link to a
// heading (#anchor, in the file or another) names one that is there.
func TestDocLinks(t *testing.T) {
	root := "../.."
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	named := regexp.MustCompile(`\bdocs/[A-Za-z0-9_-]+\.md`)
	checked := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "dist" || d.Name() == "node_modules" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".md":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range link.FindAllStringSubmatch(string(b), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				target, frag, _ := strings.Cut(target, "#")
				file := path
				if target != "" {
					file = filepath.Join(filepath.Dir(path), target)
				}
				checked++
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s links to %s, which does not exist", rel, m[1])
					continue
				}
				if frag != "" && strings.HasSuffix(file, ".md") && !anchors(t, file)[frag] {
					t.Errorf("%s links to %s: %s has no heading with that anchor", rel, m[1], file)
				}
			}
		case ".go":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range named.FindAllString(string(b), -1) {
				checked++
				if _, err := os.Stat(filepath.Join(root, m)); err != nil {
					t.Errorf("%s names %s, which does not exist", rel, m)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("only %d links checked: the walk went wrong", checked)
	}
}

// anchors returns the anchors GitHub gives the headings of the Markdown
// file: the heading's text in lower case, without punctuation (letters,
// digits, spaces, '-' and '_' stay), spaces made '-', and "-1", "-2" … on
// repeats.
func anchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	seen := map[string]int{}
	fence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		text, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if fence || !strings.HasPrefix(line, "#") || !ok {
			continue
		}
		var slug strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(text)) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				slug.WriteRune(r)
			case r == ' ':
				slug.WriteByte('-')
			}
		}
		a := slug.String()
		if n := seen[a]; n > 0 {
			seen[a]++
			a = fmt.Sprintf("%s-%d", a, n)
		} else {
			seen[a] = 1
		}
		out[a] = true
	}
	return out
}
