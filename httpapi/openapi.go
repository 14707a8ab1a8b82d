package httpapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"sort"
	"strings"

	"github.com/labstack/echo/v4"
	"gopkg.in/yaml.v3"
)

// openapiYAML is the API's OpenAPI 3 document; a test keeps it and the
// router in step.
//
//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns the document as a JSON-ready value.
func OpenAPI() (map[string]any, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	return doc, nil
}

func (s *Server) routesDocs(e *echo.Echo) {
	doc, err := OpenAPI()
	if err != nil {
		panic(err) // embedded at build time: a broken document is a build bug
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err)
	}
	e.GET("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
	})
	page := docsPage(doc)
	e.GET("/docs", func(c echo.Context) error { return c.HTML(http.StatusOK, page) })
}

// docsPage is a plain listing of every operation: enough to read without
// fetching a UI bundle (the machine has no CDN to load one from).
func docsPage(doc map[string]any) string {
	var b strings.Builder
	b.WriteString("<!doctype html><title>cdnflow API</title><h1>cdnflow API</h1><p><a href=\"/openapi.json\">openapi.json</a></p><table>")
	paths, _ := doc["paths"].(map[string]any)
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	for _, p := range keys {
		ops, _ := paths[p].(map[string]any)
		for _, m := range []string{"get", "post", "put", "patch", "delete"} {
			op, ok := ops[m].(map[string]any)
			if !ok {
				continue
			}
			summary, _ := op["summary"].(string)
			fmt.Fprintf(&b, "<tr><td><b>%s</b></td><td><code>%s</code></td><td>%s</td></tr>", strings.ToUpper(m), html.EscapeString(p), html.EscapeString(summary))
		}
	}
	b.WriteString("</table>")
	return b.String()
}
