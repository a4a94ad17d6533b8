package readme

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// maxMarkdownWidth is the width, in characters, that the project's
// Markdown prose wraps at, so that a diff shows the lines that changed
// and the files read well in a terminal.
const maxMarkdownWidth = 120

// TestMarkdownWraps checks that every Markdown file under the repository's
// root wraps its prose at maxMarkdownWidth characters: tracked or not, but
// not under a directory whose name starts with a dot, node_modules or
// testdata. Fenced blocks (``` fences only), table rows (a row cannot
// wrap) and a line that is one inline code span (a query or command a
// reader copies whole) may be longer.
func TestMarkdownWraps(t *testing.T) {
	root := filepath.Join("..", "..")
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			// Removed after its directory was listed: nothing to check.
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".md") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no Markdown file under %s: did the test move?", root)
	}
	for _, path := range files {
		name, _ := filepath.Rel(root, path)
		for _, l := range tooWide(t, path) {
			t.Errorf("%s:%d: %d characters; wrap the prose at %d (fenced blocks, table rows and a line that is one code span may be longer)",
				name, l.n, l.width, maxMarkdownWidth)
		}
	}
}

type wideLine struct{ n, width int }

// tooWide returns the lines of the Markdown file at path wider than
// maxMarkdownWidth that TestMarkdownWraps does not exempt.
func tooWide(t *testing.T, path string) []wideLine {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed since the walk found it
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var wide []wideLine
	fenced := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			fenced = !fenced
			continue
		case fenced, strings.HasPrefix(trimmed, "|"):
			continue
		case len(trimmed) > 1 && strings.HasPrefix(trimmed, "`") && strings.HasSuffix(trimmed, "`") && strings.Count(trimmed, "`") == 2:
			continue
		}
		if w := utf8.RuneCountInString(line); w > maxMarkdownWidth {
			wide = append(wide, wideLine{n, w})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return wide
}
