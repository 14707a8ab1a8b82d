//go:build !unit

package httpapi_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// A sync round compares every edge by its table digest and reads the
// entries of only the edges whose digest differs (through varnishd to
// the connector, connector.HeaderIfDigest): settled edges report
// TableRead "digest"; an edge whose entry was changed behind the control
// plane's back is read whole, healed, and reads by digest again, while
// the other edge is never read whole.
func TestEdgeSyncReadsOnlyDifferingTables(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
		c.DefaultOrigin = ""
		c.EdgeSyncEvery = time.Second
	}})
	d := createDistribution(t, env, "/good")
	ids := []string{env.Edges[0].Edge.ID, env.Edges[1].Edge.ID}
	reports := func() map[string]*activities.EdgeSyncReport {
		var out struct {
			Edges []struct {
				ID   string                     `json:"id"`
				Sync *activities.EdgeSyncReport `json:"sync"`
			} `json:"edges"`
		}
		getJSON(t, env.API.URL+"/v1/edges", &out)
		m := map[string]*activities.EdgeSyncReport{}
		for _, e := range out.Edges {
			m[e.ID] = e.Sync
		}
		return m
	}
	byDigest := func(id string, after time.Time) func() error {
		return func() error {
			r := reports()[id]
			if r == nil || !r.CheckedAt.After(after) || r.TableRead != "digest" || r.Sites != 1 || r.Error != "" || len(r.Drift) > 0 {
				return fmt.Errorf("edge %s: report %+v, want a settled table read by digest", id, r)
			}
			return nil
		}
	}
	for _, id := range ids {
		eventually.WithinEvery(t, 30*time.Second, 200*time.Millisecond, byDigest(id, time.Time{}))
	}

	// Edge 1's entry changed under the same generation: the digest
	// differs, the round reads that table and forces the entry back.
	tbl := env.Edges[1].Connector.Table()
	entry, ok := tbl.Lookup(d.Domain)
	if !ok {
		t.Fatalf("edge 1 has no entry for %s", d.Domain)
	}
	entry.Origins = slices.Clone(entry.Origins) // the table's own slice stays as it is
	entry.Origins[0].Path = "/planted"
	if _, err := tbl.Put(entry, true); err != nil {
		t.Fatal(err)
	}
	planted := time.Now()
	eventually.WithinEvery(t, 30*time.Second, 100*time.Millisecond, func() error {
		r := reports()
		one, zero := r[ids[1]], r[ids[0]]
		if one == nil || !one.CheckedAt.After(planted) || one.TableRead != "entries" {
			return fmt.Errorf("edge 1: report %+v, want its table read whole after the plant", one)
		}
		if zero == nil || zero.TableRead != "digest" || zero.LastDriftAt.After(planted) {
			t.Fatalf("edge 0 in the round that healed edge 1: %+v, want its table read by digest only", zero)
		}
		return nil
	})
	eventually.WithinEvery(t, 30*time.Second, 200*time.Millisecond, byDigest(ids[1], time.Now()))
	if got, _ := tbl.Lookup(d.Domain); got.Origins[0].Path != "/good" {
		t.Fatalf("edge 1 entry after the heal: origin path %q, want /good", got.Origins[0].Path)
	}
}
