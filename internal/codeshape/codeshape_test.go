// Package codeshape holds tests of the repository's shape: rules that keep
// the code easy to read: short functions, the unit loop free of the
// Temporal server, and internal/ holding leaf libraries only.
package codeshape

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// MaxFuncLines is the longest a non-test function may be, counted from its
// `func` line to its closing brace.
const MaxFuncLines = 80

// TestNoLongFunctions fails for every non-test function of the module over
// MaxFuncLines lines: split it into steps that each have a name.
func TestNoLongFunctions(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	err := walkSources(root, false, func(path string) error {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		checked++
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			start, end := fset.Position(fn.Pos()).Line, fset.Position(fn.End()).Line
			if n := end - start + 1; n > MaxFuncLines {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d: %s is %d lines (at most %d)", rel, start, fn.Name.Name, n, MaxFuncLines)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d Go files: is the walk rooted at the module?", checked)
	}
}

// stackPackages are the packages whose test files start the stack; such a
// file must carry `//go:build !unit` so that `make unit` (-tags unit) never
// links the Temporal server into a test binary.
var stackPackages = []string{
	`"github.com/cdnflow/cdnflow/stack/testenv"`,
	`"github.com/cdnflow/cdnflow/stack"`,
	`"github.com/cdnflow/cdnflow/internal/devtemporal"`,
}

// TestIntegrationFilesLeaveTheUnitLoop fails for a test file without the
// `//go:build !unit` line that imports a stack package, or that belongs to
// a package which links the Temporal server itself (serverFolders: stack,
// cmd/cdnflow; 10 s of linking per test binary on 2 cores).
func TestIntegrationFilesLeaveTheUnitLoop(t *testing.T) {
	root := filepath.Join("..", "..")
	linksServer := serverFolders(t, root)
	if !linksServer["stack"] || !linksServer["cmd/cdnflow"] {
		t.Fatalf("folders linking the Temporal server %v: stack and cmd/cdnflow missing", linksServer)
	}
	err := walkSources(root, true, func(path string) error {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			for _, pkg := range stackPackages {
				if imp.Path.Value == pkg && !hasUnitExclusion(f) {
					t.Errorf("%s imports %s but has no //go:build !unit line", path, pkg)
				}
			}
		}
		if dir, _ := filepath.Rel(root, filepath.Dir(path)); linksServer[filepath.ToSlash(dir)] && !hasUnitExclusion(f) {
			t.Errorf("%s tests a package that links the Temporal server but has no //go:build !unit line", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// serverFolders are the module's folders (slash-separated, relative to
// root) whose non-test files import internal/devtemporal, directly or
// through other module packages: every test binary built there links the
// Temporal server.
func serverFolders(t *testing.T, root string) map[string]bool {
	const module = "github.com/cdnflow/cdnflow/"
	imports := map[string][]string{} // folder → module folders it imports
	err := walkSources(root, false, func(path string) error {
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); strings.HasPrefix(p, module) {
				imports[filepath.ToSlash(dir)] = append(imports[filepath.ToSlash(dir)], strings.TrimPrefix(p, module))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	server := map[string]bool{"internal/devtemporal": true}
	for changed := true; changed; {
		changed = false
		for dir, deps := range imports {
			for _, dep := range deps {
				if server[dep] && !server[dir] {
					server[dir], changed = true, true
				}
			}
		}
	}
	return server
}

func hasUnitExclusion(f *ast.File) bool {
	for _, cg := range f.Comments {
		if cg.Pos() > f.Package {
			break
		}
		for _, c := range cg.List {
			if strings.HasPrefix(c.Text, "//go:build") && strings.Contains(c.Text, "!unit") {
				return true
			}
		}
	}
	return false
}

// leafRoots are the module's folders that packages under internal/ may
// import: internal/ holds the leaf libraries every other folder builds on
// (edge/ imports them too), so it imports only itself. Settings live in
// config/ and the process assembly in stack/, both above.
var leafRoots = []string{"internal/"}

// TestInternalImportsNothingAbove fails for a file under internal/ (tests
// included) that imports a module package outside leafRoots, such as
// edge, config, workflows, activities, service, httpapi, worker or stack.
func TestInternalImportsNothingAbove(t *testing.T) {
	const module = "github.com/cdnflow/cdnflow/"
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			rel, ok := strings.CutPrefix(p, module)
			if !ok {
				continue
			}
			leaf := false
			for _, r := range leafRoots {
				leaf = leaf || rel == strings.TrimSuffix(r, "/") || strings.HasPrefix(rel, strings.TrimSuffix(r, "/")+"/")
			}
			if !leaf {
				t.Errorf("%s imports %s: internal/ holds leaf libraries only", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked only %d files under internal/", checked)
	}
}

// walkSources calls visit with the path of every Go file under root that
// is a test file (tests) or is not (!tests), leaving out hidden folders
// and testdata.
func walkSources(root string, tests bool, visit func(path string) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") != tests {
			return nil
		}
		return visit(path)
	})
}
