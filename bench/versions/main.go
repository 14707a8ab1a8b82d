// Command versions measures distribution versions on real varnishd edges
// (issue 29's figures for them): rollback latency and two editors racing
// with If-Match. In one run:
//
//  1. one distribution gets -history versions through /v1 PATCH (a new
//     originPath each, If-Match on the version before);
//
//  2. a rollback to each of the last -rollbacks versions (immediate),
//     timed from the POST until the distribution is at the new version,
//     OPEN, and a GET through every edge (a never-cached path each poll)
//     shows the origin fetched under that version's originPath;
//
//  3. -writers writers each make -edits PATCHes with If-Match on the
//     version they last read (re-reading on 412 and 409); it counts the
//     answers and lost updates (a success not made right on the version
//     its writer read, or a version made twice).
//
//     go run ./bench/versions -edges 3 -rollbacks 20 -writers 2 -edits 500
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/inventory"
)

const appKey, secret = "bench", "bench-secret"

type bench struct {
	stack      *harness.Stack
	originHost string
	originPort int
	domain     string
	client     *http.Client
}

// plan is the /v1 answer of a PATCH or rollback (service.Plan).
type plan struct {
	From, Version int
}

// distribution is the /v1 GET of a distribution (service.DistributionV1).
type distribution struct {
	Status, LastError string
	Version           int
}

func main() {
	edges := flag.Int("edges", 3, "varnishd edges")
	history := flag.Int("history", 21, "versions made before the rollbacks")
	rollbacks := flag.Int("rollbacks", 20, "rollbacks, to each of the newest versions")
	writers := flag.Int("writers", 2, "concurrent editors")
	edits := flag.Int("edits", 500, "successful edits per editor")
	flag.Parse()
	if *rollbacks > *history {
		log.Fatalf("-rollbacks %d: at most -history (%d)", *rollbacks, *history)
	}
	stack, err := harness.Start(context.Background(), harness.Options{Edges: *edges, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{appKey: secret}
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer stack.Stop()
	host, port, _ := strings.Cut(stack.OriginAddr, ":")
	p, _ := strconv.Atoi(port)
	b := &bench{stack: stack, originHost: host, originPort: p, client: &http.Client{Timeout: 2 * time.Minute}}
	b.create()

	// 1. History: version n (2..history+1) fetches under /h<n>.
	for n := 2; n <= *history+1; n++ {
		b.patch(n-1, b.origin("/h"+strconv.Itoa(n)))
		b.waitLive(n, "/h"+strconv.Itoa(n))
	}
	// 2. Rollbacks to the newest versions, oldest of them first.
	current := *history + 1
	var lat []time.Duration
	for n := current - *rollbacks + 1; n <= *history+1; n++ {
		start := time.Now()
		var pl plan
		if status, raw := b.v1("POST", "/rollback", strconv.Itoa(current), map[string]any{"version": n, "immediate": true}, &pl); status != http.StatusAccepted {
			log.Fatalf("rollback to %d: %d %s", n, status, raw)
		}
		current = pl.Version
		b.waitLive(current, "/h"+strconv.Itoa(n))
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	log.Printf("%d rollbacks: p50 %s p99 %s", len(lat), pct(lat, 0.5), pct(lat, 0.99))

	// 3. Editors racing with If-Match.
	w := b.race(*writers, *edits, current)
	fmt.Printf("versions benchmark: %d varnishd edges, 1 distribution\n", *edges)
	fmt.Printf("rollback (immediate) until live on every edge, %d rollbacks: p50 %s p99 %s max %s\n",
		len(lat), pct(lat, 0.5), pct(lat, 0.99), lat[len(lat)-1].Round(time.Millisecond))
	fmt.Printf("%d writers × %d edits with If-Match: %s; %d successes, %d stale (412), %d busy (409), %d lost updates; versions %d → %d\n",
		*writers, *edits, w.took.Round(time.Millisecond), w.ok, w.stale, w.busy, w.lost, current, w.final)
}

// raceResult are the editors' counts.
type raceResult struct {
	took                  time.Duration
	ok, stale, busy, lost int
	final                 int
}

func (b *bench) race(writers, edits, from int) raceResult {
	var mu sync.Mutex
	var r raceResult
	made := map[int]bool{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < edits; {
				var d distribution
				if status, raw := b.v1("GET", "", "", nil, &d); status != http.StatusOK {
					log.Fatalf("read: %d %s", status, raw)
				}
				var pl plan
				status, raw := b.v1("PATCH", "", strconv.Itoa(d.Version), map[string]any{"description": fmt.Sprintf("w%d-%d", w, i)}, &pl)
				mu.Lock()
				switch status {
				case http.StatusAccepted:
					i++
					r.ok++
					if made[pl.Version] || pl.From != d.Version || pl.Version != d.Version+1 {
						r.lost++
					}
					made[pl.Version] = true
				case http.StatusPreconditionFailed:
					r.stale++
				case http.StatusConflict:
					r.busy++
				default:
					log.Fatalf("PATCH: %d %s", status, raw)
				}
				mu.Unlock()
				if status == http.StatusConflict {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	r.took = time.Since(start)
	var d distribution
	b.v1("GET", "", "", nil, &d)
	r.final = d.Version
	if r.final != from+r.ok {
		r.lost += from + r.ok - r.final
	}
	return r
}

func (b *bench) origin(path string) map[string]any {
	return map[string]any{"origins": []map[string]any{{"origin": b.originHost, "port": b.originPort, "originPath": path}}}
}

// create opens the distribution (version 1, originPath /h1).
func (b *bench) create() {
	body := b.origin("/h1")
	for k, v := range map[string]any{"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST"} {
		body[k] = v
	}
	var created struct{ Distributions []struct{ Domain string } }
	if err := b.stack.NHN(b.client, appKey, secret, "POST", "/distributions", map[string]any{"distributions": []any{body}}, &created); err != nil {
		log.Fatal(err)
	}
	b.domain = created.Distributions[0].Domain
	b.waitLive(1, "/h1")
}

// patch sends a /v1 PATCH with If-Match ifMatch.
func (b *bench) patch(ifMatch int, body map[string]any) {
	if status, raw := b.v1("PATCH", "", strconv.Itoa(ifMatch), body, nil); status != http.StatusAccepted {
		log.Fatalf("PATCH on version %d: %d %s", ifMatch, status, raw)
	}
}

// waitLive waits until the distribution is at version, OPEN, and every
// edge fetches under originPath.
func (b *bench) waitLive(version int, originPath string) {
	start := time.Now()
	pending := map[string]inventory.Edge{}
	for _, id := range b.stack.Inventory.IDs() {
		e, _ := b.stack.Inventory.Get(id)
		pending[id] = e
	}
	open := false
	for poll := 0; ; poll++ {
		if time.Since(start) > 5*time.Minute {
			log.Fatalf("version %d (%s) not live after 5 min (open %v, edges left %d)", version, originPath, open, len(pending))
		}
		if !open {
			var d distribution
			b.v1("GET", "", "", nil, &d)
			if d.Status == "ERROR" {
				log.Fatalf("version %d went to ERROR: %s", d.Version, d.LastError)
			}
			open = d.Version == version && d.Status == "OPEN"
		}
		for id, e := range pending {
			if strings.HasPrefix(b.originPathOn(e, fmt.Sprintf("/probe%s/%d-%d.js", originPath, version, poll)), originPath+"/") {
				delete(pending, id)
			}
		}
		if open && len(pending) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// originPathOn is the path the origin saw for a GET of path through edge
// e ("" on failure).
func (b *bench) originPathOn(e inventory.Edge, path string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.Address+path, nil)
	req.Host = b.domain
	resp, err := b.client.Do(req)
	if err != nil {
		return ""
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("X-Origin-Path")
}

// v1 calls the distribution's /v1 route (path after the domain) with
// If-Match ifMatch when not "", and decodes a 2xx answer into out.
func (b *bench) v1(method, path, ifMatch string, body, out any) (int, []byte) {
	var rdr io.Reader
	if body != nil {
		data, _ := json.Marshal(body) // maps of JSON values: always encode
		rdr = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, b.stack.APIURL+"/v1/appKeys/"+appKey+"/distributions/"+b.domain+path, rdr)
	req.Header.Set("Authorization", secret)
	req.Header.Set("Content-Type", "application/json")
	if ifMatch != "" {
		req.Header.Set("If-Match", strconv.Quote(ifMatch))
	}
	resp, err := b.client.Do(req)
	if err != nil {
		log.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			log.Fatalf("%s %s: %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, data
}

func pct(d []time.Duration, p float64) time.Duration {
	i := int(float64(len(d)-1)*p + 0.5)
	return d[i].Round(time.Millisecond)
}
