package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `
edges:
  - {id: ATL56-C1, region: us, country: united_states, address: "127.0.0.1:6081", adminAddress: "127.0.0.1:6082", secretFile: s1}
  - {id: NRT57-C3, region: jp, country: japan, address: "127.0.0.1:6101", adminAddress: "127.0.0.1:6102", secretFile: s2, kind: varnish}
  - {id: SIN52-C1, region: apac, country: singapore, address: "edge-sin.example:80", adminAddress: "edge-sin.example:6082", secretFile: s3}
`

func TestParseYAMLAndJSON(t *testing.T) {
	inv, err := Parse([]byte(good))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if got := strings.Join(inv.IDs(), ","); got != "ATL56-C1,NRT57-C3,SIN52-C1" {
		t.Fatalf("ids = %s", got)
	}
	e, ok := inv.Get("NRT57-C3")
	if !ok || e.Kind != KindVarnish || e.Country != "japan" {
		t.Fatalf("get = %+v %v", e, ok)
	}
	js := `{"edges":[{"id":"ATL56-C1","region":"US","country":"united_states","address":"127.0.0.1:1","adminAddress":"127.0.0.1:2","secretFile":"x"}]}`
	inv, err = Parse([]byte(js))
	if err != nil {
		t.Fatalf("parse json: %v", err)
	}
	if inv.Edges[0].Region != "us" {
		t.Fatalf("region not normalised: %q", inv.Edges[0].Region)
	}
}

func TestLoadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "edges.yaml")
	if err := os.WriteFile(p, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Fatalf("load: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestValidationErrors(t *testing.T) {
	cases := map[string]struct{ doc, want string }{
		"duplicate id":    {`edges: [{id: A1, region: us, country: canada, address: "h:1", adminAddress: "h:2", secretFile: s}, {id: A1, region: us, country: canada, address: "h:3", adminAddress: "h:4", secretFile: s}]`, "duplicate id"},
		"unknown region":  {`edges: [{id: A1, region: mars, country: canada, address: "h:1", adminAddress: "h:2", secretFile: s}]`, `unknown region "mars"`},
		"unknown country": {`edges: [{id: A1, region: us, country: atlantis, address: "h:1", adminAddress: "h:2", secretFile: s}]`, `unknown country "atlantis"`},
		"bad address":     {`edges: [{id: A1, region: us, country: canada, address: "nohostport", adminAddress: "h:2", secretFile: s}]`, "address"},
		"bad port":        {`edges: [{id: A1, region: us, country: canada, address: "h:99999", adminAddress: "h:2", secretFile: s}]`, "no valid port"},
		"no admin":        {`edges: [{id: A1, region: us, country: canada, address: "h:1", secretFile: s}]`, "adminAddress: is required"},
		"no secret":       {`edges: [{id: A1, region: us, country: canada, address: "h:1", adminAddress: "h:2"}]`, "secretFile is required"},
		"bad id":          {`edges: [{id: "a b", region: us, country: canada, address: "h:1", adminAddress: "h:2", secretFile: s}]`, "id must be"},
		"bad kind":        {`edges: [{id: A1, region: us, country: canada, address: "h:1", adminAddress: "h:2", secretFile: s, kind: nginx}]`, `unknown kind "nginx"`},
		"unknown field":   {`edges: [{id: A1, regoin: us}]`, "regoin"},
		"empty":           {`edges: []`, "no edges"},
		"not yaml":        {`{{{`, "decode"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	inv, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(es []Edge) string {
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		typ    string
		values []string
		want   string
		errHas string
	}{
		{TargetPoP, []string{"NRT57-C3"}, "NRT57-C3", ""},
		{TargetPoP, []string{"NRT57-C3", "ATL56-C1"}, "ATL56-C1,NRT57-C3", ""},
		{TargetRegion, []string{"all"}, "ATL56-C1,NRT57-C3,SIN52-C1", ""},
		{TargetRegion, []string{"jp", "APAC"}, "NRT57-C3,SIN52-C1", ""},
		{TargetCountry, []string{"japan"}, "NRT57-C3", ""},
		{TargetCountry, []string{"all"}, "ATL56-C1,NRT57-C3,SIN52-C1", ""},
		{TargetPoP, []string{"XXX1"}, "", `unknown pop "XXX1" (valid: ATL56-C1, NRT57-C3, SIN52-C1)`},
		{TargetPoP, []string{"all"}, "", `"all" is only valid`},
		{TargetRegion, []string{"moon"}, "", "valid: apac, au, ca, cn, eu, jp, sa, us"},
		{TargetRegion, []string{"eu"}, "", "no edge in the inventory serves region eu (this inventory serves: apac, jp, us)"},
		// apac covers the Asia-Pacific regions jp, au and cn.
		{TargetRegion, []string{"apac"}, "NRT57-C3,SIN52-C1", ""},
		{TargetRegion, []string{"jp"}, "NRT57-C3", ""},
		{TargetCountry, []string{"narnia"}, "", "unknown country"},
		{"city", []string{"x"}, "", "unknown target_type"},
		{TargetRegion, nil, "", "at least one"},
	} {
		got, err := inv.Select(tc.typ, tc.values)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("Select(%s,%v) err = %v, want %q", tc.typ, tc.values, err, tc.errHas)
			}
			continue
		}
		if err != nil || ids(got) != tc.want {
			t.Errorf("Select(%s,%v) = %s, %v; want %s", tc.typ, tc.values, ids(got), err, tc.want)
		}
	}
}

// The inventory `cdnflow dev` ships must stay valid.
func TestDevInventoryLoads(t *testing.T) {
	inv, err := Load(filepath.Join("..", "deployments", "dev", "edges.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range inv.Edges {
		if !e.Managed {
			t.Fatalf("dev edge %s is not managed", e.ID)
		}
	}
}

// A draining edge stays in the inventory (Get, AllIDs) but no distribution,
// prewarm or purge targets it (IDs, Select); a fleet of draining edges only
// is refused.
func TestDrain(t *testing.T) {
	doc := `
edges:
  - {id: ATL56-C1, region: us, country: united_states, address: "127.0.0.1:6081", adminAddress: "127.0.0.1:6082", secretFile: s1}
  - {id: ORD51-C1, region: us, country: united_states, address: "127.0.0.1:6091", adminAddress: "127.0.0.1:6092", secretFile: s2, drain: true}
`
	inv, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(inv.IDs(), ","); got != "ATL56-C1" {
		t.Fatalf("IDs = %s, want the serving edge only", got)
	}
	if got := strings.Join(inv.AllIDs(), ","); got != "ATL56-C1,ORD51-C1" {
		t.Fatalf("AllIDs = %s", got)
	}
	if got := strings.Join(inv.Draining(), ","); got != "ORD51-C1" {
		t.Fatalf("Draining = %s", got)
	}
	if e, ok := inv.Get("ORD51-C1"); !ok || !e.Drain {
		t.Fatalf("Get(draining) = %+v %v", e, ok)
	}
	for _, target := range [][2]string{{TargetRegion, "all"}, {TargetRegion, "us"}, {TargetCountry, "united_states"}} {
		got, err := inv.Select(target[0], []string{target[1]})
		if err != nil || len(got) != 1 || got[0].ID != "ATL56-C1" {
			t.Fatalf("Select(%s %s) = %+v, %v; want ATL56-C1 only", target[0], target[1], got, err)
		}
	}
	if _, err := inv.Select(TargetPoP, []string{"ORD51-C1"}); err == nil || !strings.Contains(err.Error(), "draining") {
		t.Fatalf("Select(pop of a draining edge) = %v, want a draining refusal", err)
	}
	all := strings.ReplaceAll(doc, "secretFile: s1}", "secretFile: s1, drain: true}")
	if _, err := Parse([]byte(all)); err == nil || !strings.Contains(err.Error(), "drain") {
		t.Fatalf("every edge draining: %v, want an error", err)
	}
}
