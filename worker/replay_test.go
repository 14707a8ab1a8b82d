package worker_test

import (
	"path/filepath"
	"testing"

	"github.com/cdnflow/cdnflow/worker"
)

// Every recorded history in testdata (recorded from real runs with
// CDNFLOW_RECORD_HISTORIES=1 go test ./...) must replay against the current
// workflow code: that is what keeps running workflows safe across deploys.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in worker/testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := worker.NewReplayer()
			if err != nil {
				t.Fatal(err)
			}
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
