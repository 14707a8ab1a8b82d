package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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
	"github.com/cdnflow/cdnflow/internal/payload"
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
	// auditScanBudget bounds the keys one page request looks at; a page
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

// AuditKey is a record's key: audit/YYYYMMDD/HH/<unix ns, 20 digits>-<8
// random hex>.json, so keys sort by time and a day or hour is a prefix.
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
// request path. A full queue drops the record; a write the store refuses
// is not retried; both are logged and counted
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

func (a *AuditLog) write() {
	defer a.wg.Done()
	for r := range a.queue {
		data, err := json.Marshal(r)
		var suffix [4]byte
		_, _ = rand.Read(suffix[:])
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = a.store.Put(ctx, AuditKey(r.Time, hex.EncodeToString(suffix[:])), data)
			cancel()
		}
		if err != nil {
			metrics.AuditRecords.WithLabelValues("failed").Inc()
			a.logLimited("audit record not written (cdnflow_audit_records_total counts them all)", r, err)
			continue
		}
		metrics.AuditRecords.WithLabelValues("written").Inc()
	}
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

// SweepAudit deletes up to max records of the days before cutoff's day
// and answers how many it deleted.
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

// AuditQuery filters a page of the trail. Empty fields match all;
// Readable limits the appKeys seen unless All.
type AuditQuery struct {
	AppKey, TokenID, Verb string
	Since, Until          time.Time
	Limit                 int
	Cursor                string
	Readable              []string
	All                   bool
}

// AuditPage is one page, oldest first; Next is the opaque cursor of the
// next page, empty at the end.
type AuditPage struct {
	Records []AuditRecord `json:"records"`
	Next    string        `json:"next,omitempty"`
}

// ListAudit pages the trail in time order (record keys sort by time).
// Errors: *ValidationError for a bad cursor; the store's otherwise.
func ListAudit(ctx context.Context, store AuditStore, q AuditQuery) (AuditPage, error) {
	page := AuditPage{Records: []AuditRecord{}}
	after, err := decodeAuditCursor(q.Cursor)
	if err != nil {
		return page, err
	}
	if !q.Since.IsZero() {
		if from := AuditKey(q.Since, ""); from > after {
			after = from[:len(from)-len("-.json")] // every key of that instant sorts after it
		}
	}
	days, err := store.Dirs(ctx, auditPrefix)
	if err != nil {
		return page, err
	}
	l := auditLister{store: store, q: q, page: &page}
	for _, day := range days {
		if !dirMayHold(day, after) {
			continue
		}
		hours, err := store.Dirs(ctx, day)
		if err != nil {
			return page, err
		}
		for _, hour := range hours {
			if !dirMayHold(hour, after) {
				continue
			}
			done, err := l.scan(ctx, hour, after)
			if err != nil || done {
				return page, err
			}
		}
	}
	return page, nil
}

// dirMayHold reports whether dir can hold keys after after.
func dirMayHold(dir, after string) bool {
	return after == "" || dir > after || strings.HasPrefix(after, dir)
}

type auditLister struct {
	store   AuditStore
	q       AuditQuery
	page    *AuditPage
	scanned int
}

// scan reads dir's keys after after; done when the page is full, the
// budget is spent or Until is passed.
func (l *auditLister) scan(ctx context.Context, dir, after string) (bool, error) {
	// One listing per directory: the scan budget bounds how many keys a
	// page looks at in all.
	keys, err := l.store.ListAfter(ctx, dir, after, auditScanBudget-l.scanned)
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if t, ok := auditKeyTime(k); ok && !l.q.Until.IsZero() && t.After(l.q.Until) {
			return true, nil
		}
		l.scanned++
		r, ok := l.read(ctx, k)
		if ok && l.q.matches(r) {
			l.page.Records = append(l.page.Records, r)
		}
		if len(l.page.Records) >= l.q.Limit || l.scanned >= auditScanBudget {
			l.page.Next = base64.RawURLEncoding.EncodeToString([]byte(k))
			return true, nil
		}
	}
	return false, nil
}

// read gets one record; one deleted by the retention sweep meanwhile is
// skipped.
func (l *auditLister) read(ctx context.Context, key string) (AuditRecord, bool) {
	var r AuditRecord
	data, err := l.store.Get(ctx, key)
	if err != nil || json.Unmarshal(data, &r) != nil {
		return r, false
	}
	return r, true
}

func (q AuditQuery) matches(r AuditRecord) bool {
	if !q.All && (r.AppKey == "" || !slices.Contains(q.Readable, r.AppKey)) {
		return false
	}
	return (q.AppKey == "" || q.AppKey == r.AppKey) && (q.TokenID == "" || q.TokenID == r.TokenID) && (q.Verb == "" || q.Verb == r.Verb)
}

func decodeAuditCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	key := string(raw)
	if err != nil || !strings.HasPrefix(key, auditPrefix) || payload.CheckKey(key) != nil {
		return "", invalid("cursor is not one this API answered")
	}
	if _, ok := auditKeyTime(key); !ok {
		return "", invalid("cursor is not one this API answered")
	}
	return key, nil
}

// ErrAuditUnavailable means this API has no audit store (a test's API
// built without a payload store).
var ErrAuditUnavailable = errors.New("no audit store: the API runs without a payload store")
