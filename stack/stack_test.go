//go:build !unit

package stack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/cdnflow/cdnflow/internal/eventually"
	"github.com/cdnflow/cdnflow/stack/testenv"
	"github.com/cdnflow/cdnflow/workflows"
)

// The smallest round trip through every part: API → Temporal → worker →
// real varnishd edges (HTTP and admin port) → query → API, and the job is
// listed in visibility, which is what the Web UI shows.
func TestEdgeCheckRoundTrip(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 2})

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(env.API.URL + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s = %d", path, resp.StatusCode)
		}
	}

	resp, err := http.Post(env.API.URL+"/v1/edges/check", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatalf("start check: %v", err)
	}
	var started struct{ ID string }
	decode(t, resp, http.StatusAccepted, &started)
	if !strings.HasPrefix(started.ID, "edgecheck-") {
		t.Fatalf("id = %q", started.ID)
	}

	var res workflows.EdgeCheckResult
	waitFor(t, 60*time.Second, func() bool {
		resp, err := http.Get(env.API.URL + "/v1/edges/check/" + started.ID)
		if err != nil {
			t.Fatalf("get check: %v", err)
		}
		decode(t, resp, http.StatusOK, &res)
		return res.Done
	})
	if len(res.Edges) != 2 {
		t.Fatalf("edges = %+v", res.Edges)
	}
	for i, e := range res.Edges {
		if e.EdgeID != env.Edges[i].Edge.ID || !e.HTTPOK || !e.AdminOK || e.Error != "" {
			t.Fatalf("edge %d = %+v", i, e)
		}
	}

	// Visibility (the Web UI's workflow list) finds it by our search attribute.
	query := fmt.Sprintf("%s = '%s'", workflows.KindAttr.GetName(), workflows.KindEdgeCheck)
	waitFor(t, 30*time.Second, func() bool {
		list, err := env.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, ex := range list.GetExecutions() {
			if ex.GetExecution().GetWorkflowId() == started.ID {
				return true
			}
		}
		return false
	})

	env.Replay(t, started.ID, "edgecheck")

	// A stopped edge is reported, not hidden.
	if err := env.Edges[1].Process.Stop(context.Background()); err != nil {
		t.Fatalf("stop edge: %v", err)
	}
	resp, err = http.Post(env.API.URL+"/v1/edges/check", "application/json", strings.NewReader(`{"edgeIds":["`+env.Edges[1].Edge.ID+`"]}`))
	if err != nil {
		t.Fatal(err)
	}
	decode(t, resp, http.StatusAccepted, &started)
	waitFor(t, 60*time.Second, func() bool {
		resp, err := http.Get(env.API.URL + "/v1/edges/check/" + started.ID)
		if err != nil {
			t.Fatal(err)
		}
		decode(t, resp, http.StatusOK, &res)
		return res.Done
	})
	if len(res.Edges) != 1 || res.Edges[0].HTTPOK || res.Edges[0].AdminOK || res.Edges[0].Error == "" {
		t.Fatalf("stopped edge reported as %+v", res.Edges)
	}
}

func TestEdgeCheckRejectsBadInput(t *testing.T) {
	env := testenv.Start(t, testenv.Options{Edges: 1, NoWorker: true})
	for _, tc := range []struct{ body, want string }{
		{`{"edgeIds":["NOPE-1"]}`, "unknown edge NOPE-1"},
		{`{"edgeIds":`, "body must be JSON"},
	} {
		resp, err := http.Post(env.API.URL+"/v1/edges/check", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Code, Message, RequestID string }
		decode(t, resp, http.StatusBadRequest, &body)
		if body.Code != "InvalidRequest" || !strings.Contains(body.Message, tc.want) || body.RequestID == "" {
			t.Fatalf("%s → %+v", tc.body, body)
		}
	}
	resp, err := http.Get(env.API.URL + "/v1/edges/check/edgecheck-missing")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Code string }
	decode(t, resp, http.StatusNotFound, &body)
	if body.Code != "NotFound" {
		t.Fatalf("code = %s", body.Code)
	}
}

func decode(t *testing.T, resp *http.Response, wantStatus int, v any) {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		var raw json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&raw)
		t.Fatalf("%s %s = %d (%s), want %d", resp.Request.Method, resp.Request.URL, resp.StatusCode, raw, wantStatus)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode: %v", err)
	}
}

// waitFor polls until ok or the deadline; the deadline only bounds a hung
// test, it asserts nothing about speed.
func waitFor(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	eventually.Within(t, limit, func() error {
		if !ok() {
			return errors.New("condition not met")
		}
		return nil
	})
}
