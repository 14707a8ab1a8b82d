//go:build !unit

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/internal/s3test"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// The payload store is a real S3 store (versitygw). It goes down
// while a prewarm job's chunks run: a new job is refused with the Prewarm
// API's 503, the running chunks' activities fail retryably (their results
// cannot be stored) and are retried; once the store is back the job
// completes with every pair counted once.
func TestPrewarmOnS3StoreThroughAnOutage(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket("cdnflow-payloads")
	env := testenv.Start(t, testenv.Options{Edges: 2, Configure: func(c *config.Config) {
		c.PayloadURL = srv.URL("cdnflow-payloads")
		c.PrewarmConcurrency = 2
	}})
	if !strings.HasPrefix(env.Payloads.URL(), "s3://") {
		t.Fatalf("stack's payload store is %s", env.Payloads.URL())
	}
	const n = 12
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/slow/200/outage-%d.js", domain, i) // 6 rounds of 200 ms per edge
	}
	base := env.Origin.Requests()
	id := startPrewarm(t, env, map[string]any{"url_list": urls, "cf_domain": domain, "region": "all"}, nil)
	eventually.WithinEvery(t, time.Minute, 50*time.Millisecond, func() error {
		if got := env.Origin.Requests() - base; got < 2 {
			return fmt.Errorf("%d origin requests", got)
		}
		return nil
	})
	srv.Stop()

	resp, data := postJSON(t, env.API.URL+"/prewarm", map[string]any{"url_list": []string{"http://" + domain + "/other.js"}, "cf_domain": domain, "region": "all"}, nil)
	var body struct{ Code, Message string }
	_ = json.Unmarshal(data, &body)
	if resp.StatusCode != http.StatusServiceUnavailable || body.Code != "ServiceUnavailable" || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(body.Message, "payload store") {
		t.Fatalf("new prewarm while the store is down = %d %s (Retry-After %q)", resp.StatusCode, data, resp.Header.Get("Retry-After"))
	}

	// The job's chunk (one activity for both edges) warmed its pairs but
	// cannot store them: it is retried, with the store's error, not
	// failed for good.
	jobID := workflows.PrewarmWorkflowID(id)
	eventually.WithinEvery(t, time.Minute, 200*time.Millisecond, func() error {
		d, err := env.Client.DescribeWorkflowExecution(context.Background(), jobID, "")
		if err != nil {
			return err
		}
		for _, a := range d.PendingActivities {
			if a.Attempt >= 2 && a.LastFailure != nil && strings.Contains(a.LastFailure.Message, "payload store unavailable") {
				return nil
			}
		}
		return fmt.Errorf("%s: no activity retrying after a store failure yet: %v", jobID, d.PendingActivities)
	})
	srv.Restart()

	st := waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || st.Total != n || st.Completed != n || st.Succeeded != n || st.Failed != 0 {
		t.Fatalf("after the outage: %+v", st)
	}
	var pairs service.PairPage
	if code := getJSON(t, env.API.URL+"/prewarm/"+id+"/edges?pageSize=100", &pairs); code != http.StatusOK {
		t.Fatalf("pairs = %d", code)
	}
	seen := map[string]bool{}
	for _, p := range pairs.Pairs {
		k := p.EdgeID + " " + p.URL
		if seen[k] || p.State != "success" {
			t.Fatalf("pair %+v (seen before: %v)", p, seen[k])
		}
		seen[k] = true
	}
	if pairs.TotalPairs != 2*n || len(seen) != 2*n {
		t.Fatalf("pairs total %d, distinct %d, want %d", pairs.TotalPairs, len(seen), 2*n)
	}
	// The store is back for new jobs too.
	again := startPrewarm(t, env, map[string]any{"url_list": []string{"http://" + domain + "/after-outage.js"}, "cf_domain": domain, "region": "all"}, nil)
	if st := waitPrewarm(t, env, again); st.Status != "COMPLETED" || st.Succeeded != 1 {
		t.Fatalf("job after the outage: %+v", st)
	}
}
