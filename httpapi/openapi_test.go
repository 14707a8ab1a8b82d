package httpapi_test

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/httpapi"
	"go.uber.org/zap"
)

// Every route the router serves is in the OpenAPI document, and every
// operation of the document is served.
func TestOpenAPIMatchesRouter(t *testing.T) {
	srv := httpapi.New(httpapi.Deps{Config: config.Default(), Logger: zap.NewNop()})
	served := map[string]bool{}
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	for _, r := range srv.Echo.Routes() {
		if r.Method == "echo_route_not_found" || strings.HasSuffix(r.Path, "/*") {
			continue
		}
		served[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	doc, err := httpapi.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range doc["paths"].(map[string]any) {
		for m := range ops.(map[string]any) {
			if m == "parameters" {
				continue
			}
			documented[strings.ToUpper(m)+" "+path] = true
		}
	}
	var missing, extra []string
	for r := range served {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !served[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Fatalf("routes without documentation: %v\ndocumented but not served: %v", missing, extra)
	}
}
