package service

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cdnflow/cdnflow/internal/payload"
)

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

// auditPos is a record's place in the trail: its time (unix ns), then
// its batch's key, then its line in the batch. Batches of several writers
// overlap in time; this order merges them.
type auditPos struct {
	ns  int64
	key string
	idx int
}

func (p auditPos) compare(o auditPos) int {
	if c := cmp.Compare(p.ns, o.ns); c != 0 {
		return c
	}
	if c := strings.Compare(p.key, o.key); c != 0 {
		return c
	}
	return cmp.Compare(p.idx, o.idx)
}

type auditEntry struct {
	pos auditPos
	r   AuditRecord
}

// auditListPage is how many keys one listing call answers.
const auditListPage = 1000

// ListAudit pages the trail in time order. Batch keys sort by their oldest
// record and a batch spans at most auditBatchSpan, so the batches that
// can hold a record after the cursor start at most that span before it;
// their records are merged by auditPos. Errors: *ValidationError for a bad
// cursor; the store's otherwise.
func ListAudit(ctx context.Context, store AuditStore, q AuditQuery) (AuditPage, error) {
	page := AuditPage{Records: []AuditRecord{}}
	after, err := decodeAuditCursor(q.Cursor)
	if err != nil {
		return page, err
	}
	from := ""
	if start := max(after.ns, q.Since.UnixNano()); after.key != "" || !q.Since.IsZero() {
		k := AuditKey(time.Unix(0, start).Add(-auditBatchSpan), "")
		from = k[:len(k)-len("-.json")] // every key of that instant sorts after it
	}
	days, err := store.Dirs(ctx, auditPrefix)
	if err != nil {
		return page, err
	}
	l := auditLister{store: store, q: q, page: &page, after: after}
	for _, day := range days {
		if !dirMayHold(day, from) {
			continue
		}
		hours, err := store.Dirs(ctx, day)
		if err != nil {
			return page, err
		}
		for _, hour := range hours {
			if !dirMayHold(hour, from) {
				continue
			}
			if err := l.scan(ctx, hour, from); err != nil || l.done {
				return page, err
			}
		}
	}
	l.emitUpTo(time.Unix(0, 1<<62))
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
	after   auditPos // the cursor; key "" at the start
	pending []auditEntry
	scanned int
	done    bool
}

// scan reads dir's batches after from, in key order; before each it
// answers the pending records no later batch can precede.
func (l *auditLister) scan(ctx context.Context, dir, from string) error {
	for {
		keys, err := l.store.ListAfter(ctx, dir, from, auditListPage)
		if err != nil {
			return err
		}
		for _, k := range keys {
			kt, ok := auditKeyTime(k)
			if !ok {
				continue
			}
			if l.emitUpTo(kt); l.done {
				return nil
			}
			if !l.q.Until.IsZero() && kt.After(l.q.Until) {
				l.emitUpTo(time.Unix(0, 1<<62))
				l.done = true
				return nil
			}
			l.load(ctx, k)
		}
		if len(keys) < auditListPage {
			return nil
		}
		from = keys[len(keys)-1]
	}
}

// load adds the records of batch key that come after the cursor and at
// or after Since to the pending ones. A batch deleted by the retention
// sweep meanwhile, or a line that does not decode, is skipped.
func (l *auditLister) load(ctx context.Context, key string) {
	data, err := l.store.Get(ctx, key)
	if err != nil {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var r AuditRecord
		if dec.Decode(&r) != nil {
			return
		}
		e := auditEntry{pos: auditPos{ns: r.Time.UnixNano(), key: key, idx: i}, r: r}
		if (l.after.key != "" && e.pos.compare(l.after) <= 0) || r.Time.Before(l.q.Since) {
			continue
		}
		l.pending = append(l.pending, e)
	}
}

// emitUpTo answers the pending records at or before t, in order, until
// the page is full, the scan budget is spent or Until is passed (done).
func (l *auditLister) emitUpTo(t time.Time) {
	slices.SortFunc(l.pending, func(a, b auditEntry) int { return a.pos.compare(b.pos) })
	n := 0
	for ; n < len(l.pending) && !l.done; n++ {
		e := l.pending[n]
		if e.pos.ns > t.UnixNano() {
			break
		}
		if !l.q.Until.IsZero() && e.r.Time.After(l.q.Until) {
			l.done = true
			break
		}
		l.scanned++
		if l.q.matches(e.r) {
			l.page.Records = append(l.page.Records, e.r)
		}
		if len(l.page.Records) >= l.q.Limit || l.scanned >= auditScanBudget {
			l.page.Next = encodeAuditCursor(e.pos)
			l.done = true
		}
	}
	l.pending = l.pending[n:]
}

func (q AuditQuery) matches(r AuditRecord) bool {
	if !q.All && (r.AppKey == "" || !slices.Contains(q.Readable, r.AppKey)) {
		return false
	}
	return (q.AppKey == "" || q.AppKey == r.AppKey) && (q.TokenID == "" || q.TokenID == r.TokenID) && (q.Verb == "" || q.Verb == r.Verb)
}

// encodeAuditCursor is base64url of "<batch key>#<line>#<unix ns>".
func encodeAuditCursor(p auditPos) string {
	return base64.RawURLEncoding.EncodeToString([]byte(p.key + "#" + strconv.Itoa(p.idx) + "#" + strconv.FormatInt(p.ns, 10)))
}

// decodeAuditCursor reads a cursor; a bare key (a one-record object's)
// stands for its whole object.
func decodeAuditCursor(c string) (auditPos, error) {
	bad := invalid("cursor is not one this API answered")
	if c == "" {
		return auditPos{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return auditPos{}, bad
	}
	parts := strings.Split(string(raw), "#")
	key := parts[0]
	kt, ok := auditKeyTime(key)
	if !strings.HasPrefix(key, auditPrefix) || payload.CheckKey(key) != nil || !ok {
		return auditPos{}, bad
	}
	p := auditPos{ns: kt.UnixNano(), key: key, idx: 1 << 30}
	if len(parts) == 1 {
		return p, nil
	}
	if len(parts) != 3 {
		return auditPos{}, bad
	}
	idx, err1 := strconv.Atoi(parts[1])
	ns, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || idx < 0 || ns < kt.UnixNano() {
		return auditPos{}, bad
	}
	p.idx, p.ns = idx, ns
	return p, nil
}
