package service

import (
	"strings"
	"testing"
)

func TestSplitPurgeList(t *testing.T) {
	paths := func(n int) string {
		var b []string
		for i := 0; i < n; i++ {
			b = append(b, "/p/"+strings.Repeat("x", i%5)+"/"+string(rune('a'+i%26)))
		}
		return strings.Join(b, "\n")
	}
	for _, tc := range []struct {
		typ, list string
		sizes     []int
		err       string
	}{
		{"ITEM", paths(450), []int{200, 200, 50}, ""},
		{"ITEM", paths(200), []int{200}, ""},
		{"ITEM", "/a\r\n\n  /b  \n", []int{2}, ""},
		{"WILDCARD", strings.Repeat("/img/*\n", 25), []int{10, 10, 5}, ""},
		{"ALL", "", []int{0}, ""},
		{"ALL", "/ignored", []int{0}, ""},
		{"TAG", "release-1\nrelease-2", []int{2}, ""},
		{"ITEM", "", nil, "at least one path"},
		{"ITEM", "img.png", nil, "must start with /"},
		{"ITEM", "/a b", []int{1}, ""},                 // canonical: /a%20b
		{"ITEM", "/a b\n/a%20b\n/./a b", []int{3}, ""}, // NHN splits by lines
		{"ITEM", "/" + strings.Repeat("a", MaxPurgePathLen), nil, "longer than"},
		{"WILDCARD", "/img/", nil, "has no * or ?"},
		{"WILDCARD", `/img/\*`, nil, "has no * or ?"}, // an escaped * is literal
		{"WILDCARD", "/a*/b*", []int{1}, ""},          // "*" anywhere (NHN)
		{"WILDCARD", "/a/../b*", nil, "dot segment"},
		{"WILDCARD", "/img/*", []int{1}, ""},
		{"TAG", "two words", nil, "one token"},
		{"TAG", "a,b", nil, "commas"},
		{"ITEM", "/a#top", nil, "must not contain #"},
		{"ITEM", "/a%zz", nil, "purgeList line 1: path \"/a%zz\" is not a valid URL path"},
		{"ITEM", "/a\x01b", nil, "control characters"},
		{"ITEM", "/search?q=%20x", []int{1}, ""},
		{"PAGE", "/a", nil, "purgeType must be"},
		{"ITEM", paths(MaxPurgePaths + 1), nil, "at most 20000"},
	} {
		got, err := SplitPurgeList(tc.typ, tc.list, 200, 10)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %.20q: err %v, want %q", tc.typ, tc.list, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.typ, err)
			continue
		}
		var sizes []int
		for _, b := range got {
			sizes = append(sizes, len(b))
		}
		if len(sizes) != len(tc.sizes) {
			t.Errorf("%s sizes %v, want %v", tc.typ, sizes, tc.sizes)
			continue
		}
		for i := range sizes {
			if sizes[i] != tc.sizes[i] {
				t.Errorf("%s sizes %v, want %v", tc.typ, sizes, tc.sizes)
			}
		}
	}
}
