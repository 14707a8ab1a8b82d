package service

import (
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/cdnflow/cdnflow/activities"
)

// A purgeList is counted while it is read: eight million blank lines are
// refused at line MaxPurgeListLines+1 with no allocation per line, and
// entries past MaxPurgePaths are refused before the list is checked.
func TestPurgeListCountedWhileRead(t *testing.T) {
	blank := strings.Repeat("\n", 8<<20) + "/a.js"
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := SplitPurgeList(activities.PurgeItem, blank, 200, 10)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "more than 40000 lines") {
		t.Fatalf("8M blank lines = %v, want refused past %d lines", err, MaxPurgeListLines)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("8M blank lines cost %d bytes of allocations; the list must not be split first", n)
	}
	var b strings.Builder
	for i := 0; i <= MaxPurgePaths; i++ {
		b.WriteString("/p/" + strconv.Itoa(i) + ".js\r\n")
	}
	if _, err := SplitPurgeList(activities.PurgeItem, b.String(), 200, 10); err == nil || !strings.Contains(err.Error(), "more than 20000 entries") {
		t.Fatalf("%d entries = %v, want refused", MaxPurgePaths+1, err)
	}
	full := strings.TrimSuffix(b.String(), "/p/"+strconv.Itoa(MaxPurgePaths)+".js\r\n")
	batches, err := SplitPurgeList(activities.PurgeItem, full, 200, 10)
	if err != nil || len(batches) != MaxPurgePaths/200 || batches[0][0] != "/p/0.js" {
		t.Fatalf("%d entries = %d batches, %v", MaxPurgePaths, len(batches), err)
	}
}
