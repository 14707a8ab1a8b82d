//go:build !unit

package service_test

import (
	"context"
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
