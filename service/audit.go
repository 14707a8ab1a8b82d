package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/internal/metrics"
)

// AuditRecord is one mutating API request (POST, PUT, PATCH, DELETE),
// admitted or refused, as the audit trail keeps it.
type AuditRecord struct {
	Time time.Time `json:"time"`
	// TokenID is the Caller.KeyID: a token id, "apikey:<8 hex>", an
	// appKey (its SecretKey), "anonymous", or "invalid" for a credential
	// that did not authenticate.
	TokenID string `json:"tokenId"`
	AppKey  string `json:"appKey,omitempty"`
	Verb    string `json:"verb"`
	// Target is "METHOD route" and the path's appKey, domain or id, at
	// most MaxAuditTarget bytes.
	Target      string   `json:"target"`
	RequestID   string   `json:"requestId,omitempty"`
	WorkflowIDs []string `json:"workflowIds,omitempty"`
	// MoreWorkflows counts started workflows beyond the first
	// MaxAuditWorkflows.
	MoreWorkflows int `json:"moreWorkflows,omitempty"`
	Status        int `json:"status"`
	// ResultCode is the NHN resultCode of a /v1.5 answer.
	ResultCode *int `json:"resultCode,omitempty"`
}

// Bounds of one record.
const (
	MaxAuditTarget    = 256
	MaxAuditWorkflows = 32
	maxAuditRequestID = 128
	// MaxAuditPage is the largest page GET /v1/audit answers.
	MaxAuditPage = 1000
	// auditScanBudget bounds the records one page request looks at; a page
	// that reaches it ends early with a cursor.
	auditScanBudget = 5000
	auditPrefix     = "audit/"
)

// AuditStore is where records live: the payload store (payload.Bucket).
type AuditStore interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	ListAfter(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Dirs(ctx context.Context, prefix string) ([]string, error)
	Delete(ctx context.Context, key string) error
}

// AuditKey is a batch's key: audit/YYYYMMDD/HH/<unix ns of its oldest
// record, 20 digits>-<8 random hex>.json, so keys sort by time and a day
// or hour is a prefix. The object holds the batch's records as JSON lines,
// oldest first (a single record's object is one line).
func AuditKey(t time.Time, suffix string) string {
	t = t.UTC()
	return fmt.Sprintf("%s%s/%02d/%020d-%s.json", auditPrefix, t.Format("20060102"), t.Hour(), t.UnixNano(), suffix)
}

// auditKeyTime reads the time back from a key.
func auditKeyTime(key string) (time.Time, bool) {
	base := key[strings.LastIndexByte(key, '/')+1:]
	ns, err := strconv.ParseInt(strings.SplitN(base, "-", 2)[0], 10, 64)
	return time.Unix(0, ns).UTC(), err == nil
}

// AuditNote collects what the service learns about a request's tenant
// (the appKey a body's domain belongs to) for its audit record.
type AuditNote struct {
	mu     sync.Mutex
	appKey string
}

// AppKey answers the first appKey noted, "" when none.
func (n *AuditNote) AppKey() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.appKey
}

type auditNoteKey struct{}

// WithAuditNote returns ctx carrying a fresh note.
func WithAuditNote(ctx context.Context) (context.Context, *AuditNote) {
	n := &AuditNote{}
	return context.WithValue(ctx, auditNoteKey{}, n), n
}

func noteAuditAppKey(ctx context.Context, appKey string) {
	n, _ := ctx.Value(auditNoteKey{}).(*AuditNote)
	if n == nil || appKey == "" {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.appKey == "" {
		n.appKey = appKey
	}
}

// AuditLog writes records to the store from a bounded queue, off the
// request path, in batches (one object per batch, see gather). A full
// queue drops the record; a batch the store refuses is not retried; both
// are logged and counted
// (cdnflow_audit_records_total{outcome}). Close flushes the queue.
type AuditLog struct {
	store     AuditStore
	logger    *zap.Logger
	retention time.Duration
	queue     chan AuditRecord
	mu        sync.RWMutex
	closed    bool
	wg        sync.WaitGroup
	stop      chan struct{}
	// lastLog (unix ns) limits the error lines of dropped and failed
	// records to one a second: a flood or an outage must not flood the log
	// too (the metric counts every record).
	lastLog atomic.Int64
}

// logLimited logs msg at error unless another line went out in the last
// second.
func (a *AuditLog) logLimited(msg string, r AuditRecord, err error) {
	now := time.Now().UnixNano()
	last := a.lastLog.Load()
	if now-last < int64(time.Second) || !a.lastLog.CompareAndSwap(last, now) {
		return
	}
	a.logger.Error(msg, zap.String("requestId", r.RequestID), zap.String("target", r.Target), zap.Error(err))
}

// auditWriters write in parallel: an S3 PUT takes a few ms.
const auditWriters = 4

// A writer gathers the records queued within auditLinger of the first
// one, up to auditBatchMax, into one object (a batch): at a thousand
// records a second the store sees tens of writes, not a thousand. A
// batch's records lie within auditBatchSpan of its first (oldest) one,
// which is what lets ListAudit merge overlapping batches in time order.
const (
	auditBatchMax  = 256
	auditLinger    = 100 * time.Millisecond
	auditBatchSpan = 250 * time.Millisecond
)

// NewAuditLog starts the writers and the retention sweep (records older
// than retention, whole days, deleted hourly by every API; 0 keeps
// everything).
func NewAuditLog(store AuditStore, queue int, retention time.Duration, logger *zap.Logger) *AuditLog {
	queue = max(queue, 1)
	a := &AuditLog{store: store, logger: logger, retention: retention, queue: make(chan AuditRecord, queue), stop: make(chan struct{})}
	for range auditWriters {
		a.wg.Add(1)
		go a.write()
	}
	if retention > 0 {
		go a.sweepEvery(time.Hour)
	}
	return a
}

// Record queues r; it never blocks.
func (a *AuditLog) Record(r AuditRecord) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		metrics.AuditRecords.WithLabelValues("dropped_closed").Inc()
		return
	}
	select {
	case a.queue <- r:
	default:
		metrics.AuditRecords.WithLabelValues("dropped_full").Inc()
		a.logLimited("audit queue full: record dropped (cdnflow_audit_records_total counts them all)", r, nil)
	}
}

// write gathers batches from the queue until it is closed and empty.
func (a *AuditLog) write() {
	defer a.wg.Done()
	var carry *AuditRecord
	for {
		first, ok := carry, true
		if first == nil {
			var r AuditRecord
			if r, ok = <-a.queue; !ok {
				return
			}
			first = &r
		}
		batch, next, open := a.gather(*first)
		a.writeBatch(batch)
		carry = next
		if !open && carry == nil {
			return
		}
	}
}

// gather collects a batch starting with first: the records queued within
// auditLinger, at most auditBatchMax, all within auditBatchSpan of the
// oldest. A record outside the span is answered as next, the first of the
// next batch; open is false once the queue is closed and empty.
func (a *AuditLog) gather(first AuditRecord) (batch []AuditRecord, next *AuditRecord, open bool) {
	batch = append(make([]AuditRecord, 0, 16), first)
	lo, hi := first.Time, first.Time
	timer := time.NewTimer(auditLinger)
	defer timer.Stop()
	for len(batch) < auditBatchMax {
		select {
		case r, ok := <-a.queue:
			if !ok {
				return batch, nil, false
			}
			nlo, nhi := minTime(lo, r.Time), maxTime(hi, r.Time)
			if nhi.Sub(nlo) > auditBatchSpan {
				return batch, &r, true
			}
			lo, hi = nlo, nhi
			batch = append(batch, r)
		case <-timer.C:
			return batch, nil, true
		}
	}
	return batch, nil, true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// writeBatch stores batch as one object of JSON lines, oldest first,
// under the key of its oldest record.
func (a *AuditLog) writeBatch(batch []AuditRecord) {
	slices.SortStableFunc(batch, func(x, y AuditRecord) int { return x.Time.Compare(y.Time) })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one record a line
	var err error
	for i := 0; i < len(batch) && err == nil; i++ {
		err = enc.Encode(batch[i])
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = a.store.Put(ctx, AuditKey(batch[0].Time, hex.EncodeToString(suffix[:])), buf.Bytes())
		cancel()
	}
	if err != nil {
		metrics.AuditRecords.WithLabelValues("failed").Add(float64(len(batch)))
		a.logLimited(fmt.Sprintf("audit batch of %d records not written (cdnflow_audit_records_total counts them all)", len(batch)), batch[0], err)
		return
	}
	metrics.AuditRecords.WithLabelValues("written").Add(float64(len(batch)))
}

// Close stops taking records and waits until the queue is written or
// ctx ends.
func (a *AuditLog) Close(ctx context.Context) error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.queue)
		close(a.stop)
	}
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit flush: %d records not written: %w", len(a.queue), ctx.Err())
	}
}

func (a *AuditLog) sweepEvery(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if n, err := SweepAudit(ctx, a.store, time.Now().Add(-a.retention), 10000); err != nil {
			a.logger.Warn("audit retention sweep", zap.Int("deleted", n), zap.Error(err))
		}
		cancel()
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
	}
}

// SweepAudit deletes up to max objects (batches of records) of the days before
// cutoff's day and answers how many it deleted.
func SweepAudit(ctx context.Context, store AuditStore, cutoff time.Time, max int) (int, error) {
	days, err := store.Dirs(ctx, auditPrefix)
	if err != nil {
		return 0, err
	}
	keep := auditPrefix + cutoff.UTC().Format("20060102") + "/"
	n := 0
	for _, day := range days {
		if day >= keep {
			break
		}
		keys, err := store.ListAfter(ctx, day, "", max-n)
		if err != nil {
			return n, err
		}
		for _, k := range keys {
			if err := store.Delete(ctx, k); err != nil {
				return n, err
			}
			n++
		}
		if n >= max {
			break
		}
	}
	return n, nil
}

// ErrAuditUnavailable means this API has no audit store (a test's API
// built without a payload store).
var ErrAuditUnavailable = errors.New("no audit store: the API runs without a payload store")
