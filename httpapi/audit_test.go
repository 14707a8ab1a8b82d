//go:build !unit

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/workflows"
)

type auditPage struct {
	Records []service.AuditRecord
	Next    string
}

// readAudit pages GET /v1/audit with query q through every cursor.
func readAudit(t *testing.T, base, key string, q url.Values) []service.AuditRecord {
	t.Helper()
	q = maps.Clone(q)
	var all []service.AuditRecord
	for range 1000 {
		code, data, _ := call(t, base, "GET", "/v1/audit?"+q.Encode(), map[string]string{"x-api-key": key}, nil)
		var p auditPage
		if code != http.StatusOK || json.Unmarshal(data, &p) != nil {
			t.Fatalf("GET /v1/audit?%s = %d %s", q.Encode(), code, data)
		}
		all = append(all, p.Records...)
		if p.Next == "" {
			return all
		}
		q.Set("cursor", p.Next)
	}
	t.Fatal("audit paging never ended")
	return nil
}

// Mutating requests on two APIs, admitted and refused, each leave one
// audit record in the shared payload store: after one API is shut down
// (its queue flushed) and a third starts, GET /v1/audit on it answers the
// records of both, in time order, with filters and cursor paging; a read
// token on one appKey sees that appKey's records only.
func TestAuditTrailAcrossAPIsAndRestart(t *testing.T) {
	env := authEnv(t)
	bSrv, b := apiServer(t, env)
	since := time.Now().UTC()
	tok := mkToken(t, env.API.URL, []string{"read"}, []string{appKey}, "") // 1: A, POST /v1/tokens
	type req struct {
		api, method, path, rid string
		hdr                    map[string]string
		body                   any
		status, resultCode     int
	}
	reqs := []req{
		{api: "A", method: "POST", path: "/prewarm", rid: "audit-a-1", hdr: map[string]string{"x-api-key": bootKey}, body: map[string]any{}, status: 400},
		{api: "B", method: "POST", path: "/v1.5/appKeys/" + appKey + "/purges", rid: "audit-b-1", hdr: map[string]string{"Authorization": secretTwo}, body: map[string]any{}, status: 200, resultCode: httpapi_NHNUnauthorized},
		{api: "B", method: "POST", path: "/v1/schedules", rid: "audit-b-2", hdr: map[string]string{"Authorization": "Bearer " + tok.Token}, body: map[string]any{}, status: 403},
		{api: "A", method: "DELETE", path: "/v1/tokens/tok_0000000000000000", rid: "audit-a-2", hdr: map[string]string{"x-api-key": bootKey}, status: 404},
		{api: "B", method: "POST", path: "/v1.5/appKeys/" + appKey + "/purges", rid: "audit-b-3", hdr: map[string]string{"Authorization": secret},
			body: map[string]any{"domain": "no-such.example.com", "purgeType": "ITEM", "purgeList": "/a.css"}, status: 200, resultCode: 10002},
		{api: "B", method: "GET", path: "/v1/schedules", rid: "audit-b-read", hdr: map[string]string{"x-api-key": bootKey}, status: 200},
	}
	for _, r := range reqs {
		base := env.API.URL
		if r.api == "B" {
			base = b.URL
		}
		r.hdr["X-Request-Id"] = r.rid
		if code, data, _ := call(t, base, r.method, r.path, r.hdr, r.body); code != r.status {
			t.Fatalf("%s %s on %s = %d %s, want %d", r.method, r.path, r.api, code, data, r.status)
		}
		time.Sleep(5 * time.Millisecond) // distinct times, so the order is the order sent
	}
	// API B shuts down: its queue is written before it returns.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bSrv.FlushAudit(ctx); err != nil {
		t.Fatalf("flush B: %v", err)
	}
	b.Close()
	_, c := apiServer(t, env) // the restarted API
	q := url.Values{"since": {since.Format(time.RFC3339Nano)}}
	var all []service.AuditRecord
	eventually.WithinEvery(t, 20*time.Second, 200*time.Millisecond, func() error {
		all = readAudit(t, c.URL, bootKey, q)
		if len(all) < 6 {
			return fmt.Errorf("%d audit records, want 6: %+v", len(all), all)
		}
		return nil
	})
	var rids []string
	for i, r := range all {
		if i > 0 && r.Time.Before(all[i-1].Time) {
			t.Errorf("record %d (%s) is older than record %d", i, r.Time, i-1)
		}
		rids = append(rids, r.RequestID)
	}
	if rids[0] == "" || !slices.Equal(rids[1:], []string{"audit-a-1", "audit-b-1", "audit-b-2", "audit-a-2", "audit-b-3"}) {
		t.Fatalf("records' request ids = %q; want the token create, then the five mutating requests in order (no GET)", rids)
	}
	checkAuditRecords(t, all, tok.ID)
	checkAuditQueries(t, c.URL, all, since, tok)
}

// httpapi_NHNUnauthorized is NHN's resultCode of a refused credential.
const httpapi_NHNUnauthorized = 10003

// checkAuditRecords checks each record's fields against the request.
func checkAuditRecords(t *testing.T, all []service.AuditRecord, tokID string) {
	t.Helper()
	create, prewarm, wrongSecret, noScope, revoke, purge := all[0], all[1], all[2], all[3], all[4], all[5]
	if !strings.HasPrefix(create.TokenID, "apikey:") || create.Verb != "admin" || create.Status != 201 || !slices.Contains(create.WorkflowIDs, workflows.TokensWorkflowID) {
		t.Errorf("token create record = %+v", create)
	}
	if prewarm.Verb != "prewarm" || prewarm.Status != 400 || prewarm.Target != "POST /prewarm" || prewarm.ResultCode != nil {
		t.Errorf("prewarm record = %+v", prewarm)
	}
	if wrongSecret.TokenID != "invalid" || wrongSecret.AppKey != appKey || wrongSecret.Verb != "purge" || wrongSecret.ResultCode == nil || *wrongSecret.ResultCode != 10003 {
		t.Errorf("refused purge record = %+v", wrongSecret)
	}
	if noScope.TokenID != tokID || noScope.Verb != "schedule" || noScope.Status != 403 {
		t.Errorf("out-of-scope schedule record = %+v", noScope)
	}
	if revoke.Status != 404 || revoke.Target != "DELETE /v1/tokens/:id id=tok_0000000000000000" {
		t.Errorf("revoke record = %+v", revoke)
	}
	if purge.TokenID != appKey || purge.AppKey != appKey || purge.ResultCode == nil || *purge.ResultCode != 10002 {
		t.Errorf("purge record = %+v", purge)
	}
}

// checkAuditQueries checks the filters, paging and a read token's view.
func checkAuditQueries(t *testing.T, base string, all []service.AuditRecord, since time.Time, tok createdToken) {
	t.Helper()
	s := since.Format(time.RFC3339Nano)
	for name, tc := range map[string]struct {
		q    url.Values
		want []service.AuditRecord
	}{
		"token":  {url.Values{"since": {s}, "token": {tok.ID}}, []service.AuditRecord{all[3]}},
		"verb":   {url.Values{"since": {s}, "verb": {"purge"}}, []service.AuditRecord{all[2], all[5]}},
		"appKey": {url.Values{"since": {s}, "appKey": {appKey}}, []service.AuditRecord{all[2], all[5]}},
		"until":  {url.Values{"since": {s}, "until": {all[1].Time.Format(time.RFC3339Nano)}}, all[:2]},
		"paging": {url.Values{"since": {s}, "limit": {"2"}}, all},
	} {
		got := readAudit(t, base, bootKey, tc.q)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d records, want %d: %+v", name, len(got), len(tc.want), got)
			continue
		}
		for i := range got {
			if got[i].RequestID != tc.want[i].RequestID || !got[i].Time.Equal(tc.want[i].Time) {
				t.Errorf("%s: record %d = %+v, want %+v", name, i, got[i], tc.want[i])
			}
		}
	}
	// A read token on appKey sees appKey's records only.
	code, data, _ := call(t, base, "GET", "/v1/audit?since="+url.QueryEscape(s), map[string]string{"Authorization": "Bearer " + tok.Token}, nil)
	var p auditPage
	if code != http.StatusOK || json.Unmarshal(data, &p) != nil || len(p.Records) != 2 || p.Records[0].AppKey != appKey || p.Records[1].AppKey != appKey {
		t.Errorf("read token's audit view = %d %s, want the 2 records of %s", code, data, appKey)
	}
	if code, data, _ := call(t, base, "GET", "/v1/audit?cursor=bm90LWEta2V5", map[string]string{"x-api-key": bootKey}, nil); code != http.StatusBadRequest {
		t.Errorf("forged cursor = %d %s, want 400", code, data)
	}
}
