//go:build !unit

package service_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/internal/metrics"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/internal/s3test"
	"github.com/cdnflow/cdnflow/service"
)

// On a real S3 store (versitygw): records page in time order; the
// retention sweep deletes whole days before its cutoff; with the store
// down, Record never blocks, a full queue drops records and failed writes
// are counted, and Close still returns; the records written before the
// outage are there after it.
func TestAuditOnS3WithOutageAndRetention(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket("audit")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, err := payload.OpenAndProbe(ctx, srv.URL("audit"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	now := time.Now().UTC()
	old := now.Add(-100 * 24 * time.Hour)
	if err := store.Put(ctx, service.AuditKey(old, "00000000"), []byte(`{"requestId":"old"}`)); err != nil {
		t.Fatal(err)
	}
	log := service.NewAuditLog(store, 4, 0, zap.NewNop())
	for i, rid := range []string{"first", "second", "third"} {
		log.Record(service.AuditRecord{Time: now.Add(time.Duration(i) * time.Millisecond), RequestID: rid, Verb: "purge"})
	}
	if err := log.Close(ctx); err != nil {
		t.Fatal(err)
	}
	page, err := service.ListAudit(ctx, store, service.AuditQuery{All: true, Limit: 2})
	if err != nil || len(page.Records) != 2 || page.Records[0].RequestID != "old" || page.Records[1].RequestID != "first" || page.Next == "" {
		t.Fatalf("first page = %+v %v, want old, first and a cursor", page, err)
	}
	if n, err := service.SweepAudit(ctx, store, now.Add(-90*24*time.Hour), 100); err != nil || n != 1 {
		t.Fatalf("sweep = %d %v, want the one record of 100 days ago", n, err)
	}
	page, err = service.ListAudit(ctx, store, service.AuditQuery{All: true, Limit: 10})
	if err != nil || len(page.Records) != 3 || page.Records[2].RequestID != "third" {
		t.Fatalf("after the sweep = %+v %v, want first, second, third", page, err)
	}

	srv.Stop()
	failed0 := auditCount(t, "failed")
	full0 := auditCount(t, "dropped_full")
	down := service.NewAuditLog(store, 4, 0, zap.NewNop())
	start := time.Now()
	for range 50 {
		down.Record(service.AuditRecord{Time: time.Now(), RequestID: "during-outage"})
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("50 records took %s to queue with the store down; Record must not block", took)
	}
	if err := down.Close(ctx); err != nil {
		t.Fatalf("close with the store down: %v", err)
	}
	failed := auditCount(t, "failed") - failed0
	full := auditCount(t, "dropped_full") - full0
	if failed < 1 || full < 1 || failed+full != 50 {
		t.Fatalf("with the store down: %v failed, %v dropped (queue full); want both, 50 in all", failed, full)
	}
	srv.Restart()
	page, err = service.ListAudit(ctx, store, service.AuditQuery{All: true, Limit: 10})
	if err != nil || len(page.Records) != 3 {
		t.Fatalf("after the outage = %+v %v, want the 3 records", page, err)
	}
}

// auditCount reads cdnflow_audit_records_total{outcome} from the registry.
func auditCount(t *testing.T, outcome string) float64 {
	t.Helper()
	fams, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "cdnflow_audit_records_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// Two audit logs (two APIs) write interleaved records into one store at
// once, in batches (far fewer objects than records, batches overlapping in
// time); a third log started after both closed (an API restart) adds
// more. Paging by 7 (cursors inside batches) answers every record once in
// time order; a verb filter and since/until page the same way.
func TestAuditPagesAcrossOverlappingBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := payload.Open(ctx, payload.FileURL(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = store.Close() }()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	a := service.NewAuditLog(store, 1000, 0, zap.NewNop())
	b := service.NewAuditLog(store, 1000, 0, zap.NewNop())
	const n = 600 // 1.2 s of records, one each 2 ms per log
	rec := func(i int) service.AuditRecord {
		verb := "purge"
		if i%3 == 0 {
			verb = "prewarm"
		}
		return service.AuditRecord{Time: t0.Add(time.Duration(i) * time.Millisecond), RequestID: fmt.Sprint(i), Verb: verb}
	}
	for i := 0; i < n; i += 2 {
		a.Record(rec(i))
		b.Record(rec(i + 1))
		if i%100 == 0 {
			time.Sleep(20 * time.Millisecond) // writers take partial batches too
		}
	}
	for _, l := range []*service.AuditLog{a, b} {
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	c := service.NewAuditLog(store, 100, 0, zap.NewNop()) // after a restart
	for i := n; i < n+20; i++ {
		c.Record(rec(i))
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if objects := countObjects(ctx, t, store); objects > (n+20)/4 {
		t.Fatalf("%d objects for %d records: records were not batched", objects, n+20)
	}
	want := make([]string, n+20)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	checkAuditPages(ctx, t, store, service.AuditQuery{All: true, Limit: 7}, want)
	var prewarms []string
	for i := 0; i < n+20; i += 3 {
		prewarms = append(prewarms, fmt.Sprint(i))
	}
	checkAuditPages(ctx, t, store, service.AuditQuery{All: true, Limit: 7, Verb: "prewarm"}, prewarms)
	checkAuditPages(ctx, t, store, service.AuditQuery{All: true, Limit: 9, Since: t0.Add(301 * time.Millisecond), Until: t0.Add(450 * time.Millisecond)}, want[301:451])
}

// checkAuditPages pages q through every cursor and compares the request
// ids with want, in order.
func checkAuditPages(ctx context.Context, t *testing.T, store service.AuditStore, q service.AuditQuery, want []string) {
	t.Helper()
	var got []string
	for pages := 0; ; pages++ {
		page, err := service.ListAudit(ctx, store, q)
		if err != nil || pages > len(want) {
			t.Fatalf("page %d: %v (or paging never ends)", pages, err)
		}
		for _, r := range page.Records {
			got = append(got, r.RequestID)
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("query %+v: %d records %v, want %d %v", q, len(got), got, len(want), want)
	}
}

func countObjects(ctx context.Context, t *testing.T, store service.AuditStore) int {
	t.Helper()
	n := 0
	days, err := store.Dirs(ctx, "audit/")
	for _, day := range days {
		hours, err2 := store.Dirs(ctx, day)
		for _, h := range hours {
			keys, err3 := store.ListAfter(ctx, h, "", 100000)
			n += len(keys)
			err2 = errors.Join(err2, err3)
		}
		err = errors.Join(err, err2)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}
