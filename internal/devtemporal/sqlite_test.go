//go:build !unit

package devtemporal

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	persistencesql "go.temporal.io/server/common/persistence/sql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	"go.temporal.io/server/common/resolver"
)

// The server's own writers never collide in the SQLite file: read-then-
// write transactions, run side by side the way matching renews its task
// queue leases (SELECT the range, then UPDATE it), all commit. With a pool
// of several connections SQLite fails some of them at once with
// SQLITE_BUSY, whatever busy_timeout says, unless they begin IMMEDIATE.
func TestSQLiteTransactionsDoNotCollide(t *testing.T) {
	dir := t.TempDir()
	conf, dbFile, err := sqlConfig(withDefaults(Options{DataDir: dir}))
	if err != nil {
		t.Fatalf("sql config: %v", err)
	}
	db, err := persistencesql.NewSQLDB(sqlplugin.DbKindMain, conf, resolver.NewNoopResolver(), tlog.NewNoopLogger(), metrics.NoopMetricsHandler)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer func() { _ = db.Close() }()
	ctx := context.Background()
	const writers, rounds = 8, 100
	v := sqlplugin.MatchingTaskVersion1
	row := func(i int, rangeID int64) *sqlplugin.TaskQueuesRow {
		return &sqlplugin.TaskQueuesRow{TaskQueueID: []byte(fmt.Sprintf("queue-%d", i)), RangeID: rangeID, Data: []byte("x"), DataEncoding: "Proto3"}
	}
	for i := range writers {
		if _, err := db.InsertIntoTaskQueues(ctx, row(i, 0), v); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	lease := func(i int) error {
		tx, err := db.BeginTx(ctx)
		if err != nil {
			return err
		}
		rangeID, err := tx.LockTaskQueues(ctx, sqlplugin.TaskQueuesFilter{TaskQueueID: row(i, 0).TaskQueueID}, v)
		if err == nil {
			_, err = tx.UpdateTaskQueues(ctx, row(i, rangeID+1), v)
		}
		if err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	}
	errs := make(chan error, writers*rounds)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := lease(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n == 0 {
			t.Errorf("lease: %v", err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d transactions failed", n, writers*rounds)
	}
	// The settings in the DSN reached the driver, and SQLite opened the
	// file named, in WAL mode.
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	want := []string{dbFile, dbFile + "-shm", dbFile + "-wal"}
	if !slices.Equal(files, want) {
		t.Fatalf("data dir holds %v, want %v", files, want)
	}
	for i := range writers {
		rows, err := db.SelectFromTaskQueues(ctx, sqlplugin.TaskQueuesFilter{TaskQueueID: row(i, 0).TaskQueueID}, v)
		if err != nil || len(rows) != 1 || rows[0].RangeID != rounds {
			t.Fatalf("queue %d after %d leases: %+v, %v", i, rounds, rows, err)
		}
	}
}
