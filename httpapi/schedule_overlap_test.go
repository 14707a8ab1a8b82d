//go:build !unit

package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

// A scheduled run lasts as long as the job it started, so the schedule's
// overlap policy governs the job: with SKIP, a firing while the first
// run's prewarm (a 6 s origin) still runs is skipped; once the job has
// ended the next firing runs.
func TestScheduleOverlapSkipsWhileTheJobRuns(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1})
	prewarm := map[string]any{"url_list": []string{"http://" + domain + "/slow/6000/overlap.js"}, "cf_domain": domain, "region": "all"}
	if resp, data := postJSON(t, env.API.URL+"/v1/schedules", map[string]any{
		"id": "overlap", "kind": "prewarm", "interval": "24h", "overlap": "SKIP", "prewarm": prewarm,
	}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create = %d %s", resp.StatusCode, data)
	}
	trigger := func() {
		if resp, data := postJSON(t, env.API.URL+"/v1/schedules/overlap/trigger", "", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("trigger = %d %s", resp.StatusCode, data)
		}
	}
	describe := func(runs int) service.ScheduleView {
		var v service.ScheduleView
		eventually.WithinEvery(t, 30*time.Second, 100*time.Millisecond, func() error {
			getJSON(t, env.API.URL+"/v1/schedules/overlap", &v)
			if len(v.RecentRuns) != runs {
				return fmt.Errorf("schedule has %d runs, want %d: %+v", len(v.RecentRuns), runs, v)
			}
			return nil
		})
		return v
	}
	trigger()
	first := describe(1).RecentRuns[0]
	started := time.Now()
	trigger() // while the first run's job is fetching its 6 s object
	eventually.WithinEvery(t, 10*time.Second, 100*time.Millisecond, func() error {
		if v := describe(1); v.SkippedOverlap != 1 {
			return fmt.Errorf("skippedOverlap = %d, want 1", v.SkippedOverlap)
		}
		return nil
	})
	var run activities.ScheduledRun
	if err := env.Client.GetWorkflow(context.Background(), first, "").Get(context.Background(), &run); err != nil {
		t.Fatalf("first run: %v", err)
	}
	if took := time.Since(started); took < 4*time.Second {
		t.Fatalf("the first run ended %s after it started; its job takes 6 s", took)
	}
	var st service.PrewarmStatusResponse
	if code := getJSON(t, env.API.URL+"/status?requestID="+run.RequestID, &st); code != 200 || st.Status != "COMPLETED" {
		t.Fatalf("when the run ended its prewarm was %d %+v, want COMPLETED", code, st)
	}
	trigger()
	if v := describe(2); v.SkippedOverlap != 1 {
		t.Fatalf("after the job ended: %+v", v)
	}
	env.Replay(t, first, "scheduled_job_waits")
}
