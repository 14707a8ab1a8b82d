package testenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	cdnworker "github.com/cdnflow/cdnflow/worker"
)

// History returns the full event history of a workflow's latest run.
func (env *Env) History(t testing.TB, workflowID string) *historypb.History {
	t.Helper()
	return env.RunHistory(t, workflowID, "")
}

// RunHistory returns the full event history of one run of a workflow (the
// latest when runID is empty), e.g. a run that continued as new.
func (env *Env) RunHistory(t testing.TB, workflowID, runID string) *historypb.History {
	t.Helper()
	it := env.Client.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		h.Events = append(h.Events, ev)
	}
	return h
}

// Replay replays a workflow's real history against the current workflow
// code: a non-deterministic change fails here before it fails in production.
// With CDNFLOW_RECORD_HISTORIES=1 the history is also saved as
// worker/testdata/<name>.json, which worker's replay test keeps replaying.
func (env *Env) Replay(t testing.TB, workflowID, name string) {
	t.Helper()
	env.ReplayRun(t, workflowID, "", name)
}

// ReplayRun is Replay for one run of a workflow (the latest when runID is
// empty).
func (env *Env) ReplayRun(t testing.TB, workflowID, runID, name string) {
	t.Helper()
	h := env.RunHistory(t, workflowID, runID)
	r, err := cdnworker.NewReplayer()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ReplayWorkflowHistory(nil, h); err != nil {
		t.Fatalf("replay %s: %v", workflowID, err)
	}
	if os.Getenv("CDNFLOW_RECORD_HISTORIES") == "" || name == "" {
		return
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(moduleRoot(t), "worker", "testdata")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func moduleRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}
