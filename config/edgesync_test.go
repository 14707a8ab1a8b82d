package config

import (
	"strings"
	"testing"
)

// The edge sync's deletion valves: a share in (0, 1] from the flag or the
// environment, and the operator's switch that lifts them.
func TestEdgeSyncDeletionFlags(t *testing.T) {
	if c := parse(t, nil); c.EdgeSyncMaxDeleteShare != 0.1 || c.EdgeSyncAllowMassDelete {
		t.Fatalf("defaults: share %v, mass delete %v", c.EdgeSyncMaxDeleteShare, c.EdgeSyncAllowMassDelete)
	}
	c := parse(t, map[string]string{"CDNFLOW_EDGE_SYNC_MAX_DELETE_SHARE": "0.5"}, "--edge-sync-allow-mass-delete")
	if c.EdgeSyncMaxDeleteShare != 0.5 || !c.EdgeSyncAllowMassDelete || c.Validate() != nil {
		t.Fatalf("env share and flag: %v %v %v", c.EdgeSyncMaxDeleteShare, c.EdgeSyncAllowMassDelete, c.Validate())
	}
	for _, v := range []string{"0", "-0.1", "1.5"} {
		if err := parse(t, nil, "--edge-sync-max-delete-share", v).Validate(); err == nil || !strings.Contains(err.Error(), "edge-sync-max-delete-share") {
			t.Errorf("share %s: Validate = %v", v, err)
		}
	}
}
