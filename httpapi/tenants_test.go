//go:build !unit

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/converter"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// Two tenants of one cdnflow: appKey demo and appKey other.
const (
	demoKey, demoSecret   = "demo", "demo-secret"
	otherKey, otherSecret = "other", "other-secret"
)

func tenantsEnv(t *testing.T) *testenv.Env {
	return testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.AppKeys = map[string]string{demoKey: demoSecret, otherKey: otherSecret}
		c.DefaultOrigin = "" // hosts without a distribution are not served
		c.PurgeItemInterval = 0
		c.PurgeAllInterval = 0
	}})
}

// tenantCall sends a request as key (its secret in Authorization) to
// path under the API and answers the HTTP status and body; no t, so
// goroutines may call it.
func tenantCall(env *testenv.Env, method, path, keySecret string, body any) (int, []byte, error) {
	var rdr io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rdr = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, env.API.URL+path, rdr)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", keySecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// tenantNHN is a /v1.5 call of key: its NHN header and body.
func tenantNHN(env *testenv.Env, method, key, keySecret, path string, body any) (nhnHeader, []byte, error) {
	status, data, err := tenantCall(env, method, "/v1.5/appKeys/"+key+path, keySecret, body)
	if err != nil {
		return nhnHeader{}, nil, err
	}
	var out struct {
		Header nhnHeader `json:"header"`
	}
	if err := json.Unmarshal(data, &out); err != nil || status != http.StatusOK {
		return nhnHeader{}, data, fmt.Errorf("%s %s = %d %s", method, path, status, data)
	}
	return out.Header, data, nil
}

// distributionBody is a creation body in front of the test origin.
func distributionBody(env *testenv.Env, aliases string) map[string]any {
	originHost, originPort, _ := strings.Cut(env.OriginAddr, ":")
	return map[string]any{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y",
		"referrerType": "BLACKLIST", "isAllowWhenEmptyReferrer": true, "domainAlias": aliases,
		"origins": []map[string]any{{"origin": originHost, "port": atoi(originPort)}},
	}
}

// purgeDone sends a purge as key and waits until every seq of it reached
// 100 %.
func purgeDone(t *testing.T, env *testenv.Env, key, keySecret, domain, purgeType, list string) {
	t.Helper()
	h, data, err := tenantNHN(env, "POST", key, keySecret, "/purges", map[string]any{"domain": domain, "purgeType": purgeType, "purgeList": list})
	if err != nil || !h.IsSuccessful {
		t.Fatalf("%s purge %s %s: %+v %s %v", key, purgeType, list, h, data, err)
	}
	var pr struct{ PurgeSeqs []int64 }
	_ = json.Unmarshal(data, &pr)
	eventually.Within(t, 60*time.Second, func() error {
		_, data, err := tenantNHN(env, "GET", key, keySecret, "/purges?domain="+domain+"&itemsPerPage=1000", nil)
		if err != nil {
			return err
		}
		var list struct{ Purges []service.PurgeItem }
		_ = json.Unmarshal(data, &list)
		done := 0
		for _, p := range list.Purges {
			for _, s := range pr.PurgeSeqs {
				if p.Seq == s && p.Progress == 100 {
					done++
				}
			}
		}
		if done < len(pr.PurgeSeqs) {
			return fmt.Errorf("purge seqs %v not done: %+v", pr.PurgeSeqs, list.Purges)
		}
		return nil
	})
}

// requireRefusedInUse checks an NHN answer is the host-in-use refusal
// (10001) naming neither demo's appKey nor its domain.
func requireRefusedInUse(t *testing.T, what string, h nhnHeader, data []byte, err error, host, demoDomain string) {
	t.Helper()
	if err != nil || h.IsSuccessful || h.ResultCode != 10001 || !strings.Contains(h.ResultMessage, "host "+host+" is already in use") {
		t.Fatalf("%s with demo's alias = %+v %s %v; want 10001 host %s is already in use", what, h, data, err, host)
	}
	if strings.Contains(string(data), demoDomain) || strings.Contains(string(data), demoKey) {
		t.Fatalf("%s refusal names demo's distribution: %s", what, data)
	}
}

// The reproduction of issue 30: demo serves www.shop.test; other cannot
// create, PUT or PATCH (/v1.5 or /v1) a distribution with that alias,
// whatever its case; other's WILDCARD and ALL purges of its own domain
// leave demo's object a HIT on every edge; once demo closes its
// distribution other can take the host; of concurrent creations with one
// alias by both tenants exactly one wins.
func TestHostsHaveOneOwner(t *testing.T) {
	env := tenantsEnv(t)
	const host = "www.shop.test"
	demo := createOpenDistribution(t, env, demoKey, demoSecret, host)
	cacheOnEveryEdge(t, env, host, "/shop.js")
	mine := createOpenDistribution(t, env, otherKey, otherSecret, "")

	h, data, err := tenantNHN(env, "POST", otherKey, otherSecret, "/distributions", map[string]any{"distributions": []any{distributionBody(env, "WWW.Shop.test")}})
	requireRefusedInUse(t, "POST", h, data, err, host, demo)
	put := distributionBody(env, "extra.other.test\n"+host)
	put["domain"] = mine
	h, data, err = tenantNHN(env, "PUT", otherKey, otherSecret, "/distributions", put)
	requireRefusedInUse(t, "PUT", h, data, err, host, demo)
	h, data, err = tenantNHN(env, "PATCH", otherKey, otherSecret, "/distributions", map[string]any{"domain": mine, "domainAlias": host})
	requireRefusedInUse(t, "PATCH", h, data, err, host, demo)
	status, data, err := tenantCall(env, "PATCH", "/v1/appKeys/"+otherKey+"/distributions/"+mine, otherSecret, map[string]any{"domainAlias": strings.ToUpper(host)})
	if err != nil || status != http.StatusBadRequest || !strings.Contains(string(data), "host "+host+" is already in use") || strings.Contains(string(data), demo) {
		t.Fatalf("/v1 PATCH with demo's alias = %d %s %v", status, data, err)
	}
	// A dry run answers what the change would: refused, and claims nothing.
	status, data, err = tenantCall(env, "PATCH", "/v1/appKeys/"+otherKey+"/distributions/"+mine+"?dryRun=true", otherSecret, map[string]any{"domainAlias": host})
	if err != nil || status != http.StatusBadRequest || !strings.Contains(string(data), "host "+host+" is already in use") || strings.Contains(string(data), demo) {
		t.Fatalf("/v1 dry-run PATCH with demo's alias = %d %s %v", status, data, err)
	}
	status, data, err = tenantCall(env, "PATCH", "/v1/appKeys/"+otherKey+"/distributions/"+mine+"?dryRun=true", otherSecret, map[string]any{"domainAlias": "free.other.test"})
	if err != nil || status != http.StatusOK || !strings.Contains(string(data), `"dryRun":true`) {
		t.Fatalf("/v1 dry-run PATCH with a free alias = %d %s %v", status, data, err)
	}
	// Nothing of other's attempts reached the edges or other's view.
	var view struct{ Distributions []service.DistributionView }
	_, data, _ = tenantNHN(env, "GET", demoKey, demoSecret, "/distributions?domain="+demo, nil)
	_ = json.Unmarshal(data, &view)
	if len(view.Distributions) != 1 || view.Distributions[0].DomainAlias != host || view.Distributions[0].Status != "OPEN" {
		t.Fatalf("demo's distribution after other's attempts: %+v", view.Distributions)
	}
	_, data, _ = tenantNHN(env, "GET", otherKey, otherSecret, "/distributions?domain="+mine, nil)
	_ = json.Unmarshal(data, &view)
	if len(view.Distributions) != 1 || view.Distributions[0].DomainAlias != "" || view.Distributions[0].Status != "OPEN" {
		t.Fatalf("other's distribution after refusals: %+v", view.Distributions)
	}

	purgeDone(t, env, otherKey, otherSecret, mine, "WILDCARD", "/*")
	purgeDone(t, env, otherKey, otherSecret, mine, "ALL", "")
	for i := range env.Edges {
		if got := xcacheOn(t, env, i, host, "/shop.js"); got != "HIT" {
			t.Fatalf("demo's %s/shop.js on %s after other's purges: %s, want HIT", host, env.Edges[i].Edge.ID, got)
		}
	}

	// Released when demo's distribution closes: other takes it.
	if h, _, err := tenantNHN(env, "DELETE", demoKey, demoSecret, "/distributions", map[string]any{"domains": []string{demo}}); err != nil || !h.IsSuccessful {
		t.Fatalf("demo delete: %+v %v", h, err)
	}
	eventually.Within(t, 30*time.Second, func() error {
		h, data, err := tenantNHN(env, "PATCH", otherKey, otherSecret, "/distributions", map[string]any{"domain": mine, "domainAlias": host})
		if err != nil || !h.IsSuccessful {
			return fmt.Errorf("other's PATCH after demo closed: %+v %s %v", h, data, err)
		}
		return nil
	})
	waitTenantOpen(t, env, otherKey, otherSecret, mine)
	for i := range env.Edges {
		if r := edgeGet(t, env, i, host, "/now-other.js", ""); r.StatusCode != http.StatusOK {
			t.Fatalf("%s on %s after other took it: %d", host, env.Edges[i].Edge.ID, r.StatusCode)
		}
	}

	// A distribution never holds what it did not apply: a creation whose
	// origin is unusable ends in ERROR with its alias never applied, and
	// its purges reach its domain only.
	failed := distributionBody(env, "pending.other.test")
	failed["origins"] = []map[string]any{{"origin": "nowhere.invalid", "port": 80}}
	var created struct{ Distributions []service.DistributionView }
	h, data, err = tenantNHN(env, "POST", otherKey, otherSecret, "/distributions", map[string]any{"distributions": []any{failed}})
	if _ = json.Unmarshal(data, &created); err != nil || !h.IsSuccessful || len(created.Distributions) != 1 {
		t.Fatalf("create with an unusable origin: %+v %s %v", h, data, err)
	}
	broken := created.Distributions[0].Domain
	eventually.Within(t, 60*time.Second, func() error {
		_, data, _ := tenantNHN(env, "GET", otherKey, otherSecret, "/distributions?domain="+broken, nil)
		_ = json.Unmarshal(data, &view)
		if len(view.Distributions) != 1 || view.Distributions[0].Status != "ERROR" {
			return fmt.Errorf("%s not in ERROR: %+v", broken, view.Distributions)
		}
		return nil
	})
	h, data, err = tenantNHN(env, "POST", otherKey, otherSecret, "/purges", map[string]any{"domain": broken, "purgeType": "ALL"})
	var pr struct{ PurgeSeq int64 }
	if _ = json.Unmarshal(data, &pr); err != nil || !h.IsSuccessful {
		t.Fatalf("purge of the ERROR distribution: %+v %s %v", h, data, err)
	}
	if hosts := purgeHosts(t, env, otherKey, pr.PurgeSeq); len(hosts) != 1 || hosts[0] != broken {
		t.Fatalf("purge of %s (ERROR, alias never applied) reaches hosts %v; want only its domain", broken, hosts)
	}

	// Concurrent creations of one alias by both tenants: one wins.
	for round := range 3 {
		alias := fmt.Sprintf("race%d.shop.test", round)
		var wg sync.WaitGroup
		won := make([]bool, 2)
		codes := make([]int, 2)
		for i, k := range [][2]string{{demoKey, demoSecret}, {otherKey, otherSecret}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, _, err := tenantNHN(env, "POST", k[0], k[1], "/distributions", map[string]any{"distributions": []any{distributionBody(env, alias)}})
				won[i], codes[i] = err == nil && h.IsSuccessful, h.ResultCode
			}()
		}
		wg.Wait()
		if won[0] == won[1] || (codes[0] != 10001 && codes[1] != 10001) {
			t.Fatalf("round %d: demo won %v (%d), other won %v (%d); want exactly one, the other 10001", round, won[0], codes[0], won[1], codes[1])
		}
	}
}

// purgeHosts are the hosts the purge seq of key was started with.
func purgeHosts(t *testing.T, env *testenv.Env, key string, seq int64) []string {
	t.Helper()
	iter := env.Client.GetWorkflowHistory(context.Background(), workflows.PurgeWorkflowID(key, seq), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := iter.Next()
	if err != nil {
		t.Fatalf("history of purge %d: %v", seq, err)
	}
	var in workflows.PurgeSeq
	if err := converter.GetDefaultDataConverter().FromPayloads(ev.GetWorkflowExecutionStartedEventAttributes().GetInput(), &in); err != nil {
		t.Fatalf("purge %d input: %v", seq, err)
	}
	return in.Hosts
}

// waitTenantOpen waits until key's distribution domain is OPEN.
func waitTenantOpen(t *testing.T, env *testenv.Env, key, keySecret, domain string) {
	t.Helper()
	eventually.WithinEvery(t, 90*time.Second, 200*time.Millisecond, func() error {
		var view struct{ Distributions []service.DistributionView }
		_, data, err := tenantNHN(env, "GET", key, keySecret, "/distributions?domain="+domain, nil)
		if err != nil {
			return err
		}
		_ = json.Unmarshal(data, &view)
		if len(view.Distributions) != 1 || view.Distributions[0].Status != "OPEN" {
			return fmt.Errorf("%s: %+v", domain, view.Distributions)
		}
		return nil
	})
}
