//go:build cluster

package cluster_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// apiClient talks to the cluster's API processes over HTTP only (the
// contract, not the code behind it). It sends each request to the first
// API that answers: a refused connection (a killed API) moves on to the
// next at once; a 5xx or a reset (Temporal or PostgreSQL restarting) is
// retried until the deadline.
type apiClient struct {
	t        *testing.T
	bases    []string
	appKey   string
	secret   string
	deadline time.Duration
	// failovers counts requests answered by another API than the first.
	failovers atomic.Int64
	http      *http.Client
	// lastJob is the request ID of the scenario's prewarm job.
	lastJob string
}

// errRetry marks an answer worth another try.
var errRetry = errors.New("retry")

// try sends one request to base; a refused connection and 5xx answers are
// errRetry. safe says whether a request may be sent again after it may
// have reached the API (idempotent, or carrying an Idempotency-Key).
func (a *apiClient) try(base, method, path, auth string, body []byte, header http.Header, safe bool) (int, []byte, error) {
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := a.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || safe {
			return 0, nil, fmt.Errorf("%w: %v", errRetry, err)
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		if safe {
			return 0, nil, fmt.Errorf("%w: %v", errRetry, err)
		}
		return 0, nil, err
	}
	if resp.StatusCode >= 500 && (safe || resp.StatusCode == http.StatusServiceUnavailable) {
		return resp.StatusCode, data, fmt.Errorf("%w: %d %s", errRetry, resp.StatusCode, data)
	}
	return resp.StatusCode, data, nil
}

// do sends a request, failing over between the APIs and retrying until
// the deadline; out receives the JSON body.
func (a *apiClient) do(method, path, auth string, body any, header http.Header, safe bool, out any) int {
	a.t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	end := time.Now().Add(a.deadline)
	for {
		var last error
		for i, base := range a.bases {
			code, data, err := a.try(base, method, path, auth, raw, header, safe)
			if err == nil {
				if i > 0 {
					a.failovers.Add(1)
				}
				if out != nil {
					if err := json.Unmarshal(data, out); err != nil {
						a.t.Fatalf("%s %s = %d %s: %v", method, path, code, data, err)
					}
				}
				return code
			}
			if !errors.Is(err, errRetry) {
				a.t.Fatalf("%s %s: %v", method, path, err)
			}
			last = err
		}
		if time.Now().After(end) {
			a.t.Fatalf("%s %s: no API answered within %s: %v", method, path, a.deadline, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type nhnHeader struct {
	Header struct {
		IsSuccessful  bool   `json:"isSuccessful"`
		ResultCode    int    `json:"resultCode"`
		ResultMessage string `json:"resultMessage"`
	} `json:"header"`
}

// nhn calls a /v1.5 route of the test's appKey and fails on a rejection.
func (a *apiClient) nhn(method, path string, body any, safe bool, out any) {
	a.t.Helper()
	var raw json.RawMessage
	a.do(method, "/v1.5/appKeys/"+a.appKey+path, a.secret, body, nil, safe, &raw)
	var h nhnHeader
	if err := json.Unmarshal(raw, &h); err != nil || !h.Header.IsSuccessful {
		a.t.Fatalf("%s %s: %s", method, path, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatal(err)
		}
	}
}

type prewarmStatus struct {
	Status    string `json:"status"`
	Total     int    `json:"total"`
	Completed int    `json:"completed"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	Edges     []struct {
		EdgeID string `json:"edgeId"`
		Done   int    `json:"done"`
		Failed int    `json:"failed"`
		Total  int    `json:"total"`
	} `json:"edges"`
	FailedURL []string `json:"failedUrl"`
}

type pairRow struct {
	EdgeID string `json:"edgeId"`
	URL    string `json:"url"`
	State  string `json:"state"`
	Cache  string `json:"cache"`
	Error  string `json:"error"`
}

type purgeItem struct {
	Seq          int64             `json:"seq"`
	Progress     int               `json:"progress"`
	PendingEdges []json.RawMessage `json:"pendingEdges"`
}

// startPrewarm starts a prewarm with an Idempotency-Key, so a retry after
// a lost answer (the API died) returns the same job.
func (a *apiClient) startPrewarm(key string, body map[string]any) string {
	a.t.Helper()
	var out struct {
		RequestID string `json:"requestID"`
	}
	if code := a.do("POST", "/prewarm", "", body, http.Header{"Idempotency-Key": {key}}, true, &out); code != http.StatusOK || out.RequestID == "" {
		a.t.Fatalf("prewarm %s = %d %+v", key, code, out)
	}
	return out.RequestID
}

func (a *apiClient) status(id string) prewarmStatus {
	a.t.Helper()
	var st prewarmStatus
	if code := a.do("GET", "/status?requestID="+id, "", nil, nil, true, &st); code != http.StatusOK {
		a.t.Fatalf("status %s = %d", id, code)
	}
	return st
}

// waitPrewarm polls until the job left IN_PROGRESS.
func (a *apiClient) waitPrewarm(id string, within time.Duration) prewarmStatus {
	a.t.Helper()
	end := time.Now().Add(within)
	for {
		st := a.status(id)
		if st.Status != "IN_PROGRESS" {
			return st
		}
		if time.Now().After(end) {
			a.t.Fatalf("prewarm %s still in progress after %s: %d of %d", id, within, st.Completed, st.Total)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (a *apiClient) pairs(id string) []pairRow {
	a.t.Helper()
	var rows []pairRow
	for page := 1; ; page++ {
		var p struct {
			TotalPairs int       `json:"totalPairs"`
			Pairs      []pairRow `json:"pairs"`
		}
		if code := a.do("GET", fmt.Sprintf("/prewarm/%s/edges?page=%d&pageSize=5000", id, page), "", nil, nil, true, &p); code != http.StatusOK {
			a.t.Fatalf("pairs of %s = %d", id, code)
		}
		rows = append(rows, p.Pairs...)
		if len(p.Pairs) == 0 || len(rows) >= p.TotalPairs {
			return rows
		}
	}
}

func (a *apiClient) purges(domain string) []purgeItem {
	a.t.Helper()
	var out struct {
		Purges []purgeItem `json:"purges"`
	}
	a.nhn("GET", "/purges?domain="+domain+"&itemsPerPage=1000", nil, true, &out)
	return out.Purges
}

// purge starts an ITEM purge of paths and returns its seqs. Sent again
// only when no API took the connection (a purge has no idempotency key).
func (a *apiClient) purge(domain string, paths []string) []int64 {
	a.t.Helper()
	var res struct {
		PurgeSeqs []int64 `json:"purgeSeqs"`
	}
	a.nhn("POST", "/purges", map[string]any{"domain": domain, "purgeType": "ITEM", "purgeList": strings.Join(paths, "\n")}, false, &res)
	return res.PurgeSeqs
}

func (a *apiClient) createDistribution(originHost string, originPort int) string {
	a.t.Helper()
	var created struct {
		Distributions []struct {
			Domain string `json:"domain"`
		} `json:"distributions"`
	}
	a.nhn("POST", "/distributions", map[string]any{"distributions": []map[string]any{{
		"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
		"origins": []map[string]any{{"origin": originHost, "port": originPort, "originPath": "/"}},
	}}}, false, &created)
	domain := created.Distributions[0].Domain
	end := time.Now().Add(2 * time.Minute)
	for {
		var out struct {
			Distributions []struct {
				Status string `json:"status"`
			} `json:"distributions"`
		}
		a.nhn("GET", "/distributions?domain="+domain, nil, true, &out)
		if len(out.Distributions) == 1 && out.Distributions[0].Status == "OPEN" {
			return domain
		}
		if time.Now().After(end) {
			a.t.Fatalf("distribution %s not OPEN: %+v", domain, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// createDistributions creates n distributions on the origin in one POST
// and waits until every one is OPEN; it returns their domains.
func (a *apiClient) createDistributions(originHost string, originPort, n int) []string {
	a.t.Helper()
	bodies := make([]map[string]any, n)
	for i := range bodies {
		bodies[i] = map[string]any{
			"region": "GLOBAL", "useOriginHttpProtocolDowngrade": false, "useOrigin": "Y", "referrerType": "BLACKLIST",
			"origins": []map[string]any{{"origin": originHost, "port": originPort, "originPath": "/"}},
		}
	}
	var created struct {
		Distributions []struct {
			Domain string `json:"domain"`
		} `json:"distributions"`
	}
	a.nhn("POST", "/distributions", map[string]any{"distributions": bodies}, false, &created)
	if len(created.Distributions) != n {
		a.t.Fatalf("created %d distributions, want %d", len(created.Distributions), n)
	}
	domains := make([]string, n)
	for i, d := range created.Distributions {
		domains[i] = d.Domain
	}
	end := time.Now().Add(2 * time.Minute)
	for _, d := range domains {
		for {
			var out struct {
				Distributions []struct {
					Status string `json:"status"`
				} `json:"distributions"`
			}
			a.nhn("GET", "/distributions?domain="+d, nil, true, &out)
			if len(out.Distributions) == 1 && out.Distributions[0].Status == "OPEN" {
				break
			}
			if time.Now().After(end) {
				a.t.Fatalf("distribution %s not OPEN: %+v", d, out)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	return domains
}

// edgeGet fetches host+path through an edge and returns X-Cache.
func edgeGet(addr, host, path string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s through %s: %w", path, addr, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Cache"), nil
}
