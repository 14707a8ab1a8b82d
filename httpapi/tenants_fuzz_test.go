//go:build !unit

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// fuzzTenant is one appKey of the fuzz and the distributions it has.
type fuzzTenant struct {
	key, secret string
	// base are the distributions created before the fuzz (A's are the
	// protected ones), fuzz those the fuzz created.
	base, fuzz []string
	// aliases are the aliases of base, never changed by the fuzz.
	aliases []string
}

// fuzzRun is the shared state of one fuzz run.
type fuzzRun struct {
	env    *testenv.Env
	a, b   *fuzzTenant
	mu     sync.Mutex
	tally  map[string]int // "op outcome" → count
	broken []string       // cross-tenant effects seen by the API
}

const (
	fuzzRequests    = 2000
	fuzzConcurrency = 8
	// fuzzMaxOwn bounds the distributions each tenant creates during the
	// fuzz; further creations name the other tenant's hosts only.
	fuzzMaxOwn = 4
)

// protectedPaths are the objects of tenant A cached on each of its hosts
// before the fuzz; A never purges them (its purges name /fz/ paths, or
// its fuzz distributions), so each must still be a HIT at the end.
var protectedPaths = []string{"/keep/0.js", "/keep/1.css", "/keep/deep/2.png", "/tag/keep,shared/3.js", "/4.html"}

// Two tenants send ≥ 2,000 random requests at once — creations, PUTs and
// PATCHes (/v1.5 and /v1) naming each other's hosts, purges of every
// type (ITEM, WILDCARD, ALL, TAG), prewarms, purge schedules, reads —
// after tenant A cached objects on every host of its distributions.
// Afterwards every object of A that A did not purge is a HIT on every
// edge (0 cross-tenant effects), and no request of B on A's hosts or
// domains was accepted. The seed is logged; CDNFLOW_FUZZ_SEED replays
// one.
func TestTwoTenantFuzz(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CDNFLOW_FUZZ_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (CDNFLOW_FUZZ_SEED=%d replays it)", seed, seed)
	env := tenantsEnv(t)
	r := &fuzzRun{env: env, tally: map[string]int{},
		a: &fuzzTenant{key: demoKey, secret: demoSecret, aliases: []string{"a1.shop.test", "a2.shop.test", "a3.shop.test"}},
		b: &fuzzTenant{key: otherKey, secret: otherSecret, aliases: []string{"b1.shop.test", "b2.shop.test"}},
	}
	r.a.base = []string{
		createOpenDistribution(t, env, r.a.key, r.a.secret, "a1.shop.test\na2.shop.test"),
		createOpenDistribution(t, env, r.a.key, r.a.secret, "a3.shop.test"),
	}
	r.b.base = []string{createOpenDistribution(t, env, r.b.key, r.b.secret, "b1.shop.test\nb2.shop.test")}
	protected := append(append([]string(nil), r.a.base...), r.a.aliases...)
	for _, h := range protected {
		for _, p := range protectedPaths {
			cacheOnEveryEdge(t, env, h, p)
		}
	}

	start := time.Now()
	ops := make(chan int)
	var wg sync.WaitGroup
	for range fuzzConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				rng := rand.New(rand.NewPCG(seed, uint64(i)))
				op, outcome := r.step(rng)
				r.count(op + " " + outcome)
			}
		}()
	}
	for i := range fuzzRequests {
		ops <- i
		if i%500 == 499 {
			t.Logf("%d requests sent in %v", i+1, time.Since(start).Round(time.Millisecond))
		}
	}
	close(ops)
	wg.Wait()
	took := time.Since(start)
	r.awaitPurges(t)

	hit, missed := 0, []string{}
	for _, h := range protected {
		for _, p := range protectedPaths {
			for i := range env.Edges {
				if got := xcacheOn(t, env, i, h, p); got == "HIT" {
					hit++
				} else {
					missed = append(missed, fmt.Sprintf("%s%s on %s: %s", h, p, env.Edges[i].Edge.ID, got))
				}
			}
		}
	}
	t.Logf("%d requests, %d at once, in %v; outcomes:\n%s", fuzzRequests, fuzzConcurrency, took.Round(time.Millisecond), r.report())
	t.Logf("tenant A's objects still HIT on every edge: %d of %d; cross-tenant effects: %d", hit, hit+len(missed), len(missed)+len(r.broken))
	if len(missed) > 0 || len(r.broken) > 0 {
		t.Fatalf("cross-tenant effects (seed %d):\n%s\n%s", seed, strings.Join(missed, "\n"), strings.Join(r.broken, "\n"))
	}
}

func (r *fuzzRun) count(k string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tally[k]++
}

func (r *fuzzRun) crossed(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.broken = append(r.broken, fmt.Sprintf(format, args...))
}

func (r *fuzzRun) report() string {
	keys := make([]string, 0, len(r.tally))
	for k := range r.tally {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-28s %d\n", k, r.tally[k])
	}
	return b.String()
}

// domains are t's distributions (base and fuzz) as of now.
func (r *fuzzRun) domains(t *fuzzTenant) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(append([]string(nil), t.base...), t.fuzz...)
}

// step sends one random request of a random tenant and answers its kind
// and outcome (ok, refused, error).
func (r *fuzzRun) step(rng *rand.Rand) (string, string) {
	me, them := r.a, r.b
	if rng.IntN(2) == 1 {
		me, them = r.b, r.a
	}
	// The mix: every kind, with the requests that start workflows
	// (purges, prewarms, accepted changes) at about a third, so that 2,000
	// requests fit in the test.
	switch n := rng.IntN(100); {
	case n < 15:
		return r.create(rng, me, them)
	case n < 55:
		return r.change(rng, me, them)
	case n < 75:
		return r.purge(rng, me, them)
	case n < 83:
		return r.prewarm(rng, me)
	case n < 86:
		return r.schedule(rng, me)
	default:
		mine := r.domains(me)
		_, _, err := tenantNHN(r.env, "GET", me.key, me.secret, "/distributions?domain="+mine[rng.IntN(len(mine))], nil)
		return "read", outcome(err == nil, err)
	}
}

func outcome(ok bool, err error) string {
	switch {
	case err != nil:
		return "error"
	case ok:
		return "ok"
	}
	return "refused"
}

// aliasFor is a domainAlias value for me: a fresh host of its own, or
// one of them's base hosts (a collision, which must be refused).
func aliasFor(rng *rand.Rand, me, them *fuzzTenant) (value string, collides bool) {
	fresh := fmt.Sprintf("f%d.%s.fuzz.test", rng.IntN(12), me.key)
	switch rng.IntN(3) {
	case 0:
		return fresh + "\n" + them.aliases[rng.IntN(len(them.aliases))], true
	case 1:
		return strings.ToUpper(them.aliases[rng.IntN(len(them.aliases))]), true
	}
	return fresh, false
}

func (r *fuzzRun) create(rng *rand.Rand, me, them *fuzzTenant) (string, string) {
	alias, collides := aliasFor(rng, me, them)
	r.mu.Lock()
	full := len(me.fuzz) >= fuzzMaxOwn
	r.mu.Unlock()
	if full && !collides {
		alias, collides = them.aliases[0], true
	}
	h, data, err := tenantNHN(r.env, "POST", me.key, me.secret, "/distributions", map[string]any{"distributions": []any{distributionBody(r.env, alias)}})
	if err == nil && h.IsSuccessful {
		if collides {
			r.crossed("%s created a distribution with %q, a host of %s", me.key, alias, them.key)
		}
		var out struct{ Distributions []service.DistributionView }
		if json.Unmarshal(data, &out) == nil && len(out.Distributions) == 1 {
			r.mu.Lock()
			me.fuzz = append(me.fuzz, out.Distributions[0].Domain)
			r.mu.Unlock()
		}
	}
	return "create", outcome(h.IsSuccessful, err)
}

// change PUTs or PATCHes one of me's fuzz distributions (or B's base one)
// with a random alias; one naming them's host must be refused.
func (r *fuzzRun) change(rng *rand.Rand, me, them *fuzzTenant) (string, string) {
	r.mu.Lock()
	targets := append([]string(nil), me.fuzz...)
	if me == r.b {
		targets = append(targets, me.base...)
	}
	r.mu.Unlock()
	if len(targets) == 0 {
		return "change", "skipped"
	}
	domain := targets[rng.IntN(len(targets))]
	alias, collides := aliasFor(rng, me, them)
	if slices.Contains(me.base, domain) {
		// A base distribution keeps its aliases: the other tenant's
		// attempts on them must be refused all along.
		alias = strings.Join(me.aliases, "\n") + "\n" + alias
	}
	var ok bool
	var err error
	kind := []string{"put", "patch", "patch-v1"}[rng.IntN(3)]
	switch kind {
	case "put":
		body := distributionBody(r.env, alias)
		body["domain"] = domain
		var h nhnHeader
		h, _, err = tenantNHN(r.env, "PUT", me.key, me.secret, "/distributions", body)
		ok = h.IsSuccessful
	case "patch":
		var h nhnHeader
		h, _, err = tenantNHN(r.env, "PATCH", me.key, me.secret, "/distributions", map[string]any{"domain": domain, "domainAlias": alias})
		ok = h.IsSuccessful
	default:
		var status int
		status, _, err = tenantCall(r.env, "PATCH", "/v1/appKeys/"+me.key+"/distributions/"+domain, me.secret, map[string]any{"domainAlias": alias})
		ok = status/100 == 2
	}
	if ok && collides {
		r.crossed("%s %s of %s with %q, a host of %s, was accepted", me.key, kind, domain, alias, them.key)
	}
	return kind, outcome(ok, err)
}

// purge sends a purge of a random type. A purges /fz/ paths of its base
// distributions, or anything of its fuzz ones; B purges anything of its
// own, the very paths A cached, and sometimes names A's domains (which it
// must be refused).
func (r *fuzzRun) purge(rng *rand.Rand, me, them *fuzzTenant) (string, string) {
	typ := []string{"ITEM", "WILDCARD", "ALL", "TAG"}[rng.IntN(4)]
	mine := r.domains(me)
	domain := mine[rng.IntN(len(mine))]
	baseOfA := me == r.a && domain == r.a.base[0] || me == r.a && domain == r.a.base[1]
	if baseOfA && (typ == "ALL" || typ == "TAG") {
		typ = "ITEM"
	}
	list := map[string]string{"ITEM": "/keep/0.js\n/keep/1.css\n/4.html", "WILDCARD": "/*", "ALL": "", "TAG": "keep"}[typ]
	if baseOfA {
		list = map[string]string{"ITEM": "/fz/1.js", "WILDCARD": "/fz/*"}[typ]
	}
	foreign := me == r.b && rng.IntN(10) == 0
	if foreign {
		domain = them.base[rng.IntN(len(them.base))]
	}
	h, _, err := tenantNHN(r.env, "POST", me.key, me.secret, "/purges", map[string]any{"domain": domain, "purgeType": typ, "purgeList": list})
	if foreign && h.IsSuccessful {
		r.crossed("%s purged %s of %s's domain %s", me.key, typ, them.key, domain)
	}
	return "purge-" + strings.ToLower(typ), outcome(h.IsSuccessful, err)
}

// prewarm warms /pw/ paths (never A's protected ones) on one of me's
// hosts.
func (r *fuzzRun) prewarm(rng *rand.Rand, me *fuzzTenant) (string, string) {
	hosts := append(r.domains(me), me.aliases...)
	host := hosts[rng.IntN(len(hosts))]
	body := map[string]any{"url_list": []string{fmt.Sprintf("http://%s/pw/%d.js", host, rng.IntN(50))}, "cf_domain": host, "target_type": "region", "region": []string{"us"}}
	status, _, err := tenantCall(r.env, "POST", "/prewarm", "", body)
	return "prewarm", outcome(status/100 == 2, err)
}

// schedule creates a purge schedule of me's on one of its domains (it
// does not fire within the test).
func (r *fuzzRun) schedule(rng *rand.Rand, me *fuzzTenant) (string, string) {
	mine := r.domains(me)
	body := map[string]any{
		"id": fmt.Sprintf("fz-%s-%d", me.key, rng.IntN(1_000_000)), "kind": "purge", "interval": "24h", "appKey": me.key,
		"purge": map[string]any{"domain": mine[rng.IntN(len(mine))], "purgeType": "ITEM", "purgeList": "/fz/s.js"},
	}
	status, _, err := tenantCall(r.env, "POST", "/v1/schedules", "", body)
	return "schedule", outcome(status == http.StatusCreated, err)
}

// awaitPurges waits until no purge workflow runs: a purge that reached A's
// hosts must have happened before they are checked.
func (r *fuzzRun) awaitPurges(t *testing.T) {
	t.Helper()
	eventually.Within(t, 2*time.Minute, func() error {
		resp, err := r.env.Client.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Query: "WorkflowType = 'PurgeWorkflow' AND ExecutionStatus = 'Running'"})
		if err != nil {
			return err
		}
		if n := resp.GetCount(); n > 0 {
			return fmt.Errorf("%d purges still running", n)
		}
		return nil
	})
}
