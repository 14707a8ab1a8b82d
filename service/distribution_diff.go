package service

import (
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/cdnflow/cdnflow/distribution"
)

// Change is one difference between two configurations: Path is a JSON
// Pointer (RFC 6901) into the config's JSON ("/origins/0/originPath"),
// From and To the values there (null where one side has none).
type Change struct {
	Path string `json:"path"`
	From any    `json:"from"`
	To   any    `json:"to"`
}

// DiffConfigs lists what differs from a to b, walking their JSON (the
// NHN field names) in a fixed order: object keys sorted, arrays by index.
func DiffConfigs(a, b distribution.Config) []Change {
	out := []Change{}
	diffJSON("", asJSON(a), asJSON(b), &out)
	return out
}

// asJSON is v decoded from its JSON into maps, slices and scalars.
func asJSON(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		panic("config does not encode: " + err.Error()) // a Config always does
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		panic("config does not decode: " + err.Error())
	}
	return out
}

func diffJSON(path string, a, b any, out *[]Change) {
	switch av := a.(type) {
	case map[string]any:
		if bv, ok := b.(map[string]any); ok {
			keys := make([]string, 0, len(av)+len(bv))
			for k := range av {
				keys = append(keys, k)
			}
			for k := range bv {
				if _, ok := av[k]; !ok {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			for _, k := range keys {
				diffJSON(path+"/"+escapePointer(k), av[k], bv[k], out)
			}
			return
		}
	case []any:
		if bv, ok := b.([]any); ok {
			for i := 0; i < max(len(av), len(bv)); i++ {
				var x, y any
				if i < len(av) {
					x = av[i]
				}
				if i < len(bv) {
					y = bv[i]
				}
				diffJSON(path+"/"+strconv.Itoa(i), x, y, out)
			}
			return
		}
	}
	if !reflect.DeepEqual(a, b) {
		if path == "" {
			path = "/"
		}
		*out = append(*out, Change{Path: path, From: a, To: b})
	}
}

func escapePointer(k string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
}
