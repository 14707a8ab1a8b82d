package service

import (
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/edge/vcl"
)

// Each origin keeps its own originPath (NHN v1.5 origins[]):
// different paths are accepted and stay per origin; a trailing "/" is
// dropped; a path over vcl.MaxOriginPathLen is a 10001 naming the field.
func TestEachOriginKeepsItsOriginPath(t *testing.T) {
	str := func(s string) *string { return &s }
	port := func(p int) *int { return &p }
	origins := func(paths ...string) []OriginBody {
		var out []OriginBody
		for i, p := range paths {
			out = append(out, OriginBody{Origin: str("o" + string(rune('a'+i)) + ".example"), Port: port(80), OriginPath: str(p)})
		}
		return out
	}
	got, err := buildOrigins(origins("/v1", "/v2/", ""), modeCreate)
	if err != nil {
		t.Fatalf("different paths: %v", err)
	}
	if got[0].OriginPath != "/v1" || got[1].OriginPath != "/v2" || got[2].OriginPath != "" {
		t.Fatalf("paths %+v", got)
	}
	_, err = buildOrigins(origins("/v1", "/"+strings.Repeat("a", vcl.MaxOriginPathLen)), modeCreate)
	if err == nil || !strings.Contains(err.Error(), "origins[1].originPath") {
		t.Fatalf("too long a path: %v, want a refusal naming origins[1].originPath", err)
	}
}
