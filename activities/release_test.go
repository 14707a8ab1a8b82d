package activities

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/edge"
)

// A retried warmth measurement cannot fill the cache: the first attempt's
// GETs miss (and, as on a real edge, store the objects: the next GET would
// be a HIT); a retried attempt (it finds the first attempt's heartbeat)
// only probes the cache and sends no GET, so the misses stay misses.
func TestMeasureWarmthRetryProbesOnly(t *testing.T) {
	var mu sync.Mutex
	cached, gets, probes := map[string]bool{}, 0, 0
	_, inv := newFakeEdge(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get(edge.ProbeHeader) != "" {
			probes++
			w.WriteHeader(http.StatusNotFound) // "absent": the fake edge cannot answer "cached age="
			return
		}
		gets++
		w.Header().Set("X-Cache", map[bool]string{true: "HIT", false: "MISS"}[cached[r.URL.Path]])
		cached[r.URL.Path] = true
		_, _ = w.Write([]byte("ok"))
	})
	urls := []string{"http://a.test/one.js", "http://a.test/two.js"}
	store, key := urlStore(t, urls)
	a := &Prewarm{Inventory: inv, Edge: edge.NewClient(edge.Options{}), Store: store, AttemptTimeout: 2 * time.Second}
	in := WarmthInput{JobID: "prewarm-req-w", EdgeIDs: []string{"E1"}, Domain: "a.test", Scheme: "http", URLsKey: key}
	var ts testsuite.WorkflowTestSuite
	var first, retried Warmth
	if err := runActivity(t, ts.NewTestActivityEnvironment(), a.MeasureWarmth, in, &first); err != nil {
		t.Fatal(err)
	}
	if first.Edges[0].Hit != 0 || gets != 2 {
		t.Fatalf("first attempt: %+v, %d GETs", first, gets)
	}
	env := ts.NewTestActivityEnvironment()
	env.SetHeartbeatDetails(int64(2))
	if err := runActivity(t, env, a.MeasureWarmth, in, &retried); err != nil {
		t.Fatal(err)
	}
	if retried.Edges[0].Hit != 0 || gets != 2 || probes != 2 {
		t.Fatalf("retried attempt: %+v; %d GETs (want 2, the first attempt's), %d probes (want 2)", retried, gets, probes)
	}
}
