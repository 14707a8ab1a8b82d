//go:build !unit

package httpapi_test

import (
	"context"
	"slices"
	"testing"

	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// An Idempotency-Key reused after the first job's history is gone
// (retention deleted the workflow, the payload store kept its URL list)
// starts a new job that runs its own URL list, never the first job's list
// with the new count. The state after retention is made directly: the old
// list is stored under the key's requestID and no workflow has that id.
func TestIdempotencyKeyAfterRetentionRunsTheNewList(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, Configure: func(c *config.Config) { c.ShowSuccessURLs = true }})
	const key = "release-after-retention"
	// No keys configured: the caller is "anonymous", and the host is on
	// no distribution, so the tenant is the caller's key id.
	requestID := service.PrewarmRequestID("anonymous", "key:anonymous", key)
	old := []string{"http://" + domain + "/retention/old.css"}
	if k, err := payload.PutPrewarmURLs(context.Background(), env.Payloads, requestID, old); err != nil || k != payload.PrewarmURLsKey(requestID) {
		t.Fatalf("seed the retained list: %s %v", k, err)
	}

	second := []string{"http://" + domain + "/retention/new-1.css", "http://" + domain + "/retention/new-2.css"}
	id := startPrewarm(t, env, map[string]any{"url_list": second, "cf_domain": domain, "region": "all"}, map[string]string{"Idempotency-Key": key})
	if id != requestID {
		t.Fatalf("requestID %s, want %s (derived from the Idempotency-Key)", id, requestID)
	}
	st := waitPrewarm(t, env, id)
	if st.Status != "COMPLETED" || st.Total != 2 || st.Succeeded != 2 || st.SuccessURL == nil {
		t.Fatalf("new job = %+v", st)
	}
	got := slices.Clone(*st.SuccessURL)
	slices.Sort(got)
	if !slices.Equal(got, second) {
		t.Fatalf("new job warmed %v, want its own list %v", got, second)
	}
	for u, want := range map[string]string{"/retention/new-1.css": "HIT", "/retention/new-2.css": "HIT", "/retention/old.css": "MISS"} {
		if c := cacheState(t, env, 0, u); c != want {
			t.Fatalf("%s = %s after the new job, want %s", u, c, want)
		}
	}
}
