package service

import (
	"strings"
	"testing"
)

// Issue 14: origins with different originPaths are refused with a 10001
// naming the field, never served with the first origin's path; the same
// path on every origin is accepted.
func TestOriginsShareOneOriginPath(t *testing.T) {
	str := func(s string) *string { return &s }
	port := func(p int) *int { return &p }
	origins := func(paths ...string) []OriginBody {
		var out []OriginBody
		for i, p := range paths {
			out = append(out, OriginBody{Origin: str("o" + string(rune('a'+i)) + ".example"), Port: port(80), OriginPath: str(p)})
		}
		return out
	}
	if _, err := buildOrigins(origins("/v1", "/v1/"), modeCreate); err != nil {
		t.Fatalf("same path: %v", err)
	}
	_, err := buildOrigins(origins("/v1", "/v2"), modeCreate)
	if err == nil || !strings.Contains(err.Error(), "origins[1].originPath") {
		t.Fatalf("different paths: %v, want a refusal naming origins[1].originPath", err)
	}
}
