package shopdesk_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/shopdesk/shopdesk/"

// allowed lists, for each top-level package, the project packages its non-test code may import: the
// arrows of shared/ARCHITECTURE.md. Sub-packages belong to their top-level package.
var allowed = map[string][]string{
	"cmd":        {"app"},
	"app":        {"app", "routing", "archive", "session", "agent", "rules", "migrations", "admin-ui"},
	"routing":    {"routing", "rules", "agent", "session"},
	"archive":    {"archive", "session"},
	"rules":      {"rules"},
	"agent":      {"agent"},
	"session":    {"session"},
	"migrations": {"migrations"},
	"admin-ui":   {"admin-ui"},
}

// testOnly may be imported by any package's tests: the helpers that give tests their own databases.
var testOnly = []string{"migrations/testdb"}

func TestImportBoundaries(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || !strings.Contains(path, "/") {
			return nil
		}
		top := strings.SplitN(filepath.ToSlash(path), "/", 2)[0]
		rules, ok := allowed[top]
		if !ok {
			t.Errorf("%s: top-level folder %q is not in ARCHITECTURE.md", path, top)
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		isTest := strings.HasSuffix(path, "_test.go")
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if strings.Contains(p, "gin-gonic") && top != "app" {
				t.Errorf("%s imports gin: only app may", path)
			}
			if !strings.HasPrefix(p, module) {
				continue
			}
			target := strings.TrimPrefix(p, module)
			if isTest && hasPrefixAny(target, testOnly) {
				continue
			}
			if !hasPrefixAny(target, rules) {
				t.Errorf("%s imports %s: %s may import only %v", path, target, top, rules)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func hasPrefixAny(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}
