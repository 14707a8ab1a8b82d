// Package docs holds cdnflow's long-form documentation; its test keeps the
// README's code map true.
package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// codeRef matches a code-map reference such as `service/prewarm.go:Start`,
// `workflows/prewarm.go:PrewarmWorkflow` or `activities/purge_edges.go:Purge.PurgeEdges`
// (a method is Type.Method).
var codeRef = regexp.MustCompile("`([A-Za-z0-9_./-]+\\.go):([A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)?)`")

// TestCodeMapIsTrue fails when a `file.go:Func` named in the README or in
// docs/*.md no longer exists: the file must declare that function, method
// (Type.Method), type, constant or variable.
func TestCodeMapIsTrue(t *testing.T) {
	docs, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join("..", "README.md"))
	refs := 0
	for _, doc := range docs {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range codeRef.FindAllStringSubmatch(string(text), -1) {
			refs++
			file, name := m[1], m[2]
			decls, err := declared(filepath.Join("..", filepath.FromSlash(file)))
			if err != nil {
				t.Errorf("%s names %s:%s: %v", doc, file, name, err)
				continue
			}
			if !decls[name] {
				t.Errorf("%s names %s:%s, which %s does not declare", doc, file, name, file)
			}
		}
	}
	if refs < 20 {
		t.Fatalf("found %d code references in the README and docs/; the code map must have at least 20", refs)
	}
}

// declared lists the top-level names a Go file declares: functions, methods
// as Type.Method, types, constants and variables.
func declared(path string) (map[string]bool, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if d.Recv != nil && len(d.Recv.List) > 0 {
				names[recvType(d.Recv.List[0].Type)+"."+d.Name.Name] = true
			} else {
				names[d.Name.Name] = true
			}
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					names[s.Name.Name] = true
				case *ast.ValueSpec:
					for _, n := range s.Names {
						names[n.Name] = true
					}
				}
			}
		}
	}
	return names, nil
}

// recvType is the bare type name of a method receiver (*T, T, T[K]).
func recvType(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return recvType(e.X)
	case *ast.IndexExpr:
		return recvType(e.X)
	case *ast.IndexListExpr:
		return recvType(e.X)
	case *ast.Ident:
		return e.Name
	}
	return "?"
}
