package service

import (
	"reflect"
	"testing"

	"github.com/cdnflow/cdnflow/distribution"
)

func TestDiffConfigs(t *testing.T) {
	a := distribution.Config{Region: "GLOBAL", MaxAge: 60, Origins: []distribution.Origin{{Origin: "a.test", Port: 80, OriginPath: "/v1"}}}
	b := a
	b.MaxAge = 120
	b.Description = "new"
	b.Origins = []distribution.Origin{{Origin: "a.test", Port: 80, OriginPath: "/v2"}, {Origin: "b.test", Port: 8080}}
	got := DiffConfigs(a, b)
	want := []Change{
		{Path: "/description", From: nil, To: "new"},
		{Path: "/maxAge", From: 60.0, To: 120.0},
		{Path: "/origins/0/originPath", From: "/v1", To: "/v2"},
		{Path: "/origins/1", From: nil, To: map[string]any{"origin": "b.test", "port": 8080.0}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("diff =\n%#v\nwant\n%#v", got, want)
	}
	if d := DiffConfigs(a, a); len(d) != 0 {
		t.Fatalf("diff of a config with itself = %v", d)
	}
}
