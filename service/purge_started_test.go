package service

import (
	"strconv"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/workflows"
)

// A purge this process started is listed before visibility
// shows it, newest first, once only, and only within the asked range;
// the scan it is merged into is left as cached.
func TestStartedPurgesMergeIntoScans(t *testing.T) {
	var p startedPurges
	now := time.Now()
	key := listKey("app", "a.example")
	for _, seq := range []int64{7, 8} {
		p.add(key, startedPurge(workflows.PurgeSeq{Seq: seq, Type: "ITEM", Paths: []string{"/x", "/y"}, PurgeTime: now.UnixMilli()}, 3, "purge-app-"+strconv.FormatInt(seq, 10)))
	}
	scan := []foundPurge{{item: PurgeItem{Seq: 7, Progress: 100}}, {item: PurgeItem{Seq: 5, Progress: 100}}}
	got := p.merge(key, scan, nil, nil)
	if len(got) != 3 || got[0].item.Seq != 8 || got[1].item.Seq != 7 || got[1].item.Progress != 100 || got[2].item.Seq != 5 {
		t.Fatalf("merged %+v, want seqs 8 (started here), 7 (as scanned), 5", got)
	}
	if got[0].item.Path != "/x\n/y" || got[0].item.DistributionSeq != 3 || !got[0].running || got[0].wfID != "purge-app-8" {
		t.Fatalf("started entry %+v", got[0])
	}
	if len(scan) != 2 || scan[0].item.Seq != 7 {
		t.Fatalf("the cached scan was modified: %+v", scan)
	}
	later := now.Add(time.Minute)
	if got := p.merge(key, nil, &later, nil); len(got) != 0 {
		t.Fatalf("purges started before the range start are listed: %+v", got)
	}
	if got := p.merge(listKey("app", "b.example"), nil, nil, nil); len(got) != 0 {
		t.Fatalf("another domain lists %+v", got)
	}
}
