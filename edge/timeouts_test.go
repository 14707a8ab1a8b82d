package edge_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/edge"
)

// Each kind of edge call has its own timeout: with one kind's timeout
// shorter than the edge's answer, only that kind times out; every other
// kind waits for the answer.
func TestTimeoutPerCallType(t *testing.T) {
	const answerAfter = 300 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(answerAfter):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("X-Cache", "MISS")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	t.Cleanup(srv.Close)
	e := fakeEdge(t, "T1", srv.Listener.Addr().String())
	calls := map[string]func(c *edge.Client) error{
		"prewarm GET": func(c *edge.Client) error {
			_, err := c.Fetch(context.Background(), e, edge.FetchRequest{Host: "h.test", Path: "/get"})
			return err
		},
		"PURGE": func(c *edge.Client) error { return c.Purge(context.Background(), e, "h.test", "/p", false) },
		"pipelined PURGE": func(c *edge.Client) error {
			return c.PurgeVerifiedBatch(context.Background(), e, []edge.PurgeUnit{{Host: "h.test", Path: "/p1"}}, false)[0].Err
		},
		"BAN": func(c *edge.Client) error { return c.BanPrefix(context.Background(), e, "h.test", "/b/") },
		"site table": func(c *edge.Client) error {
			_, err := c.Table(context.Background(), e)
			return err
		},
		"probe": func(c *edge.Client) error {
			_, err := c.Probe(context.Background(), e, "h.test", "/probe")
			return err
		},
	}
	short, long := 50*time.Millisecond, 10*time.Second
	options := map[string]edge.Options{
		"prewarm GET":     {Timeout: short, PurgeTimeout: long, BanTimeout: long, SiteTimeout: long, ProbeTimeout: long},
		"PURGE":           {Timeout: long, PurgeTimeout: short},
		"pipelined PURGE": {Timeout: long, PurgeTimeout: short},
		"BAN":             {Timeout: long, BanTimeout: short},
		"site table":      {Timeout: long, SiteTimeout: short},
		"probe":           {Timeout: long, ProbeTimeout: short},
	}
	var wg sync.WaitGroup
	for kind, opts := range options {
		c := edge.NewClient(opts)
		for name, call := range calls {
			shortened := name == kind || (kind == "PURGE" && name == "pipelined PURGE") || (kind == "pipelined PURGE" && name == "PURGE")
			wg.Go(func() {
				start := time.Now()
				err := call(c)
				took := time.Since(start)
				if shortened && (!timedOut(err) || took >= answerAfter) {
					t.Errorf("%s timeout short: %s took %v, err %v; want a timeout before the answer", kind, name, took, err)
				}
				if !shortened && timedOut(err) {
					t.Errorf("%s timeout short: %s timed out (%v) after %v; want its own timeout", kind, name, err, took)
				}
			})
		}
	}
	wg.Wait()
}

func timedOut(err error) bool {
	return err != nil && (errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "deadline exceeded") || strings.Contains(err.Error(), "timeout"))
}
