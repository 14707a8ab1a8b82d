//go:build cluster

package cluster_test

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A connector killed (kill -9) and started again keeps what visitors get
// from its edge: the site table comes back from its state file, the edge
// sync then finds every site as desired, and nothing is banned, so the
// cache stays warm (issue 28: a restarted connector began empty, the sync
// put every site back as new and banned it, 0 of 100 objects were HIT).
func TestConnectorKilledKeepsTheCache(t *testing.T) {
	const sites, perSite = 100, 100
	a := shared.client(t)
	edge := shared.c.Inventory().Edges[0]
	domains := a.createDistributions(shared.originHost, shared.originPort, sites)

	type object struct{ host, path string }
	objects := make([]object, 0, sites*perSite)
	for _, d := range domains {
		for i := range perSite {
			objects = append(objects, object{d, fmt.Sprintf("/keep/%d.txt", i)})
		}
	}
	// fetch gets every object through the edge, 16 at a time, and counts
	// the answers by X-Cache (errors count as "error").
	fetch := func() map[string]int {
		var mu sync.Mutex
		counts := map[string]int{}
		work := make(chan object)
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for o := range work {
					code, xc, err := edgeGet(edge.Address, o.host, o.path)
					key := xc
					if err != nil || code != 200 {
						key = fmt.Sprintf("error %d %v", code, err)
					}
					mu.Lock()
					counts[key]++
					mu.Unlock()
				}
			}()
		}
		for _, o := range objects {
			work <- o
		}
		close(work)
		wg.Wait()
		return counts
	}
	fetch()
	if c := fetch(); c["HIT"] != len(objects) {
		t.Fatalf("before the kill: %v, want %d HIT", c, len(objects))
	}

	name := "connector-" + edge.ID
	shared.restart(t, name, syscall.SIGKILL, time.Second)
	restarted := time.Now()
	// Two sync rounds that began after the restart.
	rounds := 0
	var last time.Time
	end := time.Now().Add(2 * time.Minute)
	for rounds < 2 {
		if time.Now().After(end) {
			t.Fatalf("the edge sync did not check %s twice within 2 minutes of the restart", edge.ID)
		}
		var out struct {
			Edges []struct {
				ID   string `json:"id"`
				Sync *struct {
					CheckedAt time.Time `json:"checkedAt"`
					Sites     int       `json:"sites"`
					Drift     []string  `json:"drift"`
					Error     string    `json:"error"`
				} `json:"sync"`
			} `json:"edges"`
		}
		a.do("GET", "/v1/edges", "", nil, nil, true, &out)
		for _, e := range out.Edges {
			if e.ID != edge.ID || e.Sync == nil || !e.Sync.CheckedAt.After(restarted) || e.Sync.CheckedAt.Equal(last) {
				continue
			}
			last = e.Sync.CheckedAt
			rounds++
			t.Logf("sync round %d after the restart: %d sites, drift %v, error %q", rounds, e.Sync.Sites, e.Sync.Drift, e.Sync.Error)
		}
		time.Sleep(time.Second)
	}
	c := fetch()
	t.Logf("after the connector restart and two sync rounds: %d of %d objects HIT (%v)", c["HIT"], len(objects), c)
	if c["HIT"]*100 < len(objects)*99 {
		t.Fatalf("%d of %d objects HIT after the connector restart, want at least 99%%: %v", c["HIT"], len(objects), c)
	}
}
