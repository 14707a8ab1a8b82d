//go:build !unit

package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/service"
	"github.com/cdnflow/cdnflow/stack/testenv"
)

func TestSchedulesFireAndAreManaged(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1})
	prewarm := map[string]any{"url_list": []string{"http://" + domain + "/sched.js"}, "cf_domain": domain, "target_type": "region", "region": "all"}
	resp, data := postJSON(t, env.API.URL+"/v1/schedules", map[string]any{
		"id": "nightly-assets", "kind": "prewarm", "interval": "24h", "timeZone": "Asia/Tokyo", "overlap": "SKIP", "prewarm": prewarm,
	}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create = %d %s", resp.StatusCode, data)
	}
	if resp, data := postJSON(t, env.API.URL+"/v1/schedules", map[string]any{"id": "nightly-assets", "kind": "prewarm", "interval": "24h", "prewarm": prewarm}, nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("duplicate = %d %s", resp.StatusCode, data)
	}
	if resp, data := postJSON(t, env.API.URL+"/v1/schedules/nightly-assets/trigger", "", nil); resp.StatusCode != 200 {
		t.Fatalf("trigger = %d %s", resp.StatusCode, data)
	}
	// The run starts a real prewarm job, which completes and warms the edge.
	var v service.ScheduleView
	eventually.WithinEvery(t, 60*time.Second, 200*time.Millisecond, func() error {
		getJSON(t, env.API.URL+"/v1/schedules/nightly-assets", &v)
		if len(v.RecentRuns) != 1 {
			return fmt.Errorf("schedule has not run: %+v", v)
		}
		return nil
	})
	var run activities.ScheduledRun
	if err := env.Client.GetWorkflow(context.Background(), v.RecentRuns[0], "").Get(context.Background(), &run); err != nil {
		t.Fatalf("scheduled run: %v", err)
	}
	if st := waitPrewarm(t, env, run.RequestID); st.Status != "COMPLETED" || st.Completed != 1 {
		t.Fatalf("scheduled prewarm = %+v", st)
	}
	if got := cacheState(t, env, 0, "/sched.js"); got != "HIT" {
		t.Fatalf("after the scheduled prewarm the edge says %s", got)
	}
	if v.Interval != "24h0m0s" || v.TimeZone != "Asia/Tokyo" || v.Kind != "prewarm" || len(v.NextRuns) == 0 {
		t.Fatalf("describe = %+v", v)
	}

	postJSON(t, env.API.URL+"/v1/schedules/nightly-assets/pause", "", nil)
	getJSON(t, env.API.URL+"/v1/schedules/nightly-assets", &v)
	if !v.Paused {
		t.Fatalf("not paused: %+v", v)
	}
	postJSON(t, env.API.URL+"/v1/schedules/nightly-assets/unpause", "", nil)
	var list struct{ Schedules []service.ScheduleView }
	eventually.WithinEvery(t, 30*time.Second, 200*time.Millisecond, func() error {
		getJSON(t, env.API.URL+"/v1/schedules", &list)
		if len(list.Schedules) != 1 || list.Schedules[0].Paused {
			return fmt.Errorf("list = %+v", list)
		}
		return nil
	})
	req, _ := http.NewRequest(http.MethodDelete, env.API.URL+"/v1/schedules/nightly-assets", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %v %v", resp, err)
	}
	if code := getJSON(t, env.API.URL+"/v1/schedules/nightly-assets", nil); code != http.StatusNotFound {
		t.Fatalf("after delete = %d", code)
	}
	env.Replay(t, v.RecentRuns[0], "scheduled_job")

	for name, tc := range map[string]struct {
		body map[string]any
		want string
	}{
		"bad id":       {map[string]any{"id": "Bad ID", "kind": "prewarm", "interval": "1h", "prewarm": prewarm}, "id must be"},
		"no timing":    {map[string]any{"id": "a", "kind": "prewarm", "prewarm": prewarm}, "cron"},
		"short":        {map[string]any{"id": "a", "kind": "prewarm", "interval": "1s", "prewarm": prewarm}, "at least 1m"},
		"bad tz":       {map[string]any{"id": "a", "kind": "prewarm", "interval": "1h", "timeZone": "Mars/Olympus", "prewarm": prewarm}, "time zone"},
		"bad overlap":  {map[string]any{"id": "a", "kind": "prewarm", "interval": "1h", "overlap": "SOMETIMES", "prewarm": prewarm}, "overlap"},
		"bad kind":     {map[string]any{"id": "a", "kind": "reboot", "interval": "1h"}, "kind must be"},
		"bad prewarm":  {map[string]any{"id": "a", "kind": "prewarm", "interval": "1h", "prewarm": map[string]any{"url_list": []string{}}}, "url_list"},
		"purge appkey": {map[string]any{"id": "a", "kind": "purge", "interval": "1h", "appKey": "nobody", "purge": map[string]any{"domain": "x.example", "purgeType": "ALL"}}, "not configured"},
	} {
		resp, data := postJSON(t, env.API.URL+"/v1/schedules", tc.body, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(data), tc.want) {
			t.Errorf("%s: %d %s, want 400 with %q", name, resp.StatusCode, data, tc.want)
		}
	}
}
