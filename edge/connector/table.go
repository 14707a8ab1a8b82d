package connector

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ErrHostTaken is returned by Put when another live site serves one of
// the hosts.
var ErrHostTaken = errors.New("host already served by another site")

// PutResult answers Put and Delete (and PUT/DELETE AdminPath+name).
type PutResult struct {
	// Applied is false when the table holds a newer generation of the
	// site, live or closed: nothing changed.
	Applied bool `json:"applied"`
	// New: the site was not live in the table before (absent or closed).
	New bool `json:"new,omitempty"`
	// ReferrerChanged: the site's VCL rules changed (its referrer rule or
	// forwarded cookies changed, or the site came or went with either), so
	// the edge's VCL must be rendered again.
	ReferrerChanged bool `json:"referrerChanged,omitempty"`
	// Changed: what visitors get from the site's hosts changed (hosts,
	// origins and their paths, Host forwarding, TTL, suspension,
	// referrer rule, cache policy), compared by content: a put of an equal entry under a
	// new generation is Applied but not Changed, and bans nothing. A put
	// of a site that was not live and the delete of a live one are
	// Changed.
	Changed bool `json:"changed,omitempty"`
	// Current is the generation the table holds for the name after the
	// request (nil: none), and CurrentOwner its owner: when Applied is
	// false they say what won. CurrentClosed: that entry is a closed
	// site (ClosedSite), not a live one.
	Current       *Generation `json:"current,omitempty"`
	CurrentOwner  string      `json:"currentOwner,omitempty"`
	CurrentClosed bool        `json:"currentClosed,omitempty"`
}

// TableState is the answer of GET AdminPath.
type TableState struct {
	// Started is when this connector process started.
	Started time.Time `json:"started"`
	// Loaded is the number of sites read from the state file at start: a
	// new Started with Loaded 0 is an edge whose table began empty, with
	// Loaded > 0 a restart that kept its table.
	Loaded int    `json:"loaded"`
	Digest string `json:"digest"`
	Sites  []Site `json:"sites"`
	// Closed are the closed (deleted) sites still remembered, in name
	// order: their hosts answer 404 and older changes of them are refused.
	Closed []ClosedSite `json:"closed,omitempty"`
	// Unstorable counts the origin answers refused since start because
	// the edge could not store or pass them (limits.go), per site and
	// cause; the edge check reports them per distribution.
	Unstorable []Unstorable `json:"unstorable,omitempty"`
	// Evicted counts closed entries dropped since start because more than
	// the cap were kept (their hosts then go to the default origin).
	Evicted uint64 `json:"evicted,omitempty"`
	// SaveFailures counts changes refused since start because the state
	// file could not be written.
	SaveFailures uint64 `json:"saveFailures,omitempty"`
}

// ClosedSite is a tombstone: a site deleted from the table (a CLOSE
// distribution). Its hosts answer 404 "closed" while no live site serves
// them, and changes older than Gen cannot bring it back.
type ClosedSite struct {
	Name  string     `json:"name"`
	Hosts []string   `json:"hosts,omitempty"`
	Gen   Generation `json:"gen"`
	Owner string     `json:"owner,omitempty"`
	// At is when the site was closed (UTC); the entry expires
	// TableOptions.ClosedRetention later.
	At time.Time `json:"at"`
}

const (
	// DefaultClosedRetention is how long a closed site is remembered. It
	// must outlast any retry of an older change and any edge or control
	// plane outage the sync loop heals from (a worker down over a
	// weekend): once the tombstone is gone, a late put of an older
	// generation would bring the site back and its hosts would fall to
	// the edge's default origin.
	DefaultClosedRetention = 7 * 24 * time.Hour
	// DefaultMaxClosed caps the closed sites remembered; beyond it the
	// oldest are evicted (counted in TableState.Evicted and logged).
	DefaultMaxClosed = 10000
)

// TableOptions configure a Table.
type TableOptions struct {
	// StateFile is the file the table is kept in (JSON, rewritten whole
	// and synced after each change); "" keeps the table in memory only.
	StateFile string
	// ClosedRetention is how long a closed site is kept; 0:
	// DefaultClosedRetention.
	ClosedRetention time.Duration
	// MaxClosed caps the closed sites kept; 0: DefaultMaxClosed.
	MaxClosed int
	Logger    *zap.Logger
	// now is the clock (tests); nil: time.Now.
	now func() time.Time
}

// ErrNotSaved wraps the error of a change the state file could not take:
// the change was not made (the admin protocol answers 500).
var ErrNotSaved = errors.New("site table change not saved")

// ErrTableClosed is returned by changes to a closed Table.
var ErrTableClosed = errors.New("site table closed")

// Table is an edge's site table: live sites by name and host, and closed
// ones. Safe for concurrent use.
//
// With a state file, every change goes through one writer goroutine: it
// takes the changes waiting, applies them to a copy of the table, writes
// the copy to the file and only then makes it the table readers see, so
// memory never holds a change the file does not, and one file write
// covers every change that arrived while the previous one was written.
type Table struct {
	mu      sync.RWMutex
	d       *tableData // replaced whole under mu (state file) or changed under mu (memory)
	opts    TableOptions
	started time.Time
	loaded  int
	log     *zap.Logger

	store   *stateFile // nil: memory only
	ops     chan *tableOp
	quit    chan struct{}
	done    chan struct{}
	closing sync.Once

	evicted      atomic.Uint64
	saveFailures atomic.Uint64
}

// tableOp is one change for the writer.
type tableOp struct {
	apply func(d *tableData, now time.Time) (PutResult, bool, error) // result, changed d, error
	res   PutResult
	err   error
	done  chan struct{}
}

// NewTable returns an empty table kept in memory.
func NewTable() *Table {
	t, _ := OpenTable(TableOptions{})
	return t
}

// OpenTable returns the table of o.StateFile (empty when the file does
// not exist; its directory is created) or an empty in-memory table. A
// file that cannot be read or holds no valid table is an error naming it;
// so is a file another process holds. Close releases the file.
func OpenTable(o TableOptions) (*Table, error) {
	if o.ClosedRetention <= 0 {
		o.ClosedRetention = DefaultClosedRetention
	}
	if o.MaxClosed <= 0 {
		o.MaxClosed = DefaultMaxClosed
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	t := &Table{d: newTableData(), opts: o, started: time.Now().UTC(), log: o.Logger}
	if o.StateFile == "" {
		return t, nil
	}
	st, d, err := openStateFile(o.StateFile)
	if err != nil {
		return nil, err
	}
	t.store, t.d, t.loaded = st, d, len(d.sites)
	if n := t.d.expire(o.now(), o.ClosedRetention); n > 0 {
		t.log.Info("closed sites expired", zap.Int("count", n))
	}
	t.noteEvicted(t.d.evict(o.MaxClosed))
	t.ops, t.quit, t.done = make(chan *tableOp), make(chan struct{}), make(chan struct{})
	go t.writer()
	t.log.Info("site table loaded", zap.String("file", o.StateFile), zap.Int("sites", len(t.d.sites)), zap.Int("closed", len(t.d.closed)))
	return t, nil
}

// Close stops the writer and releases the state file; later changes fail
// with ErrTableClosed. Lookups keep answering. Safe to call more than once.
func (t *Table) Close() {
	if t.store == nil {
		return
	}
	t.closing.Do(func() {
		close(t.quit)
		<-t.done
		t.store.close()
	})
}

// Lookup returns the live site serving host (lower-case, no port).
func (t *Table) Lookup(host string) (Site, bool) {
	s, r := t.route(host)
	return s, r == routeSite
}

type route int

const (
	routeNone   route = iota // no site: the edge's default origin
	routeSite                // a live site
	routeClosed              // a closed site's host: 404
)

// route says what serves host: a live site, a closed one, or neither.
func (t *Table) route(host string) (Site, route) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if name, ok := t.d.hosts[host]; ok {
		return t.d.sites[name], routeSite
	}
	cutoff := t.opts.now().Add(-t.opts.ClosedRetention)
	for _, name := range t.d.closedHosts[host] {
		if t.d.closed[name].At.After(cutoff) {
			return Site{}, routeClosed
		}
	}
	return Site{}, routeNone
}

// Put stores s unless the table holds a newer generation of it, live or
// closed; force stores it whatever the table holds under s.Name. An
// invalid site or a host served by another live site is an error and
// changes nothing (a closed site's host is taken over); so is a change
// the state file could not take (ErrNotSaved).
func (t *Table) Put(s Site, force bool) (PutResult, error) {
	if err := s.Check(); err != nil {
		return PutResult{}, err
	}
	s.Hosts = slices.Clone(s.Hosts)
	s.Origins = slices.Clone(s.Origins)
	return t.run(func(d *tableData, _ time.Time) (PutResult, bool, error) {
		res, err := d.put(s, force)
		return res, res.Applied, err
	})
}

// Delete closes the site name: it leaves the table and a ClosedSite with
// its hosts, gen and owner is kept, unless the table holds a newer
// generation of it (force: whatever it holds). Beyond MaxClosed closed
// sites the oldest are evicted. The error is ErrNotSaved or
// ErrTableClosed.
func (t *Table) Delete(name string, gen Generation, force bool) (PutResult, error) {
	var evicted []ClosedSite
	res, err := t.run(func(d *tableData, now time.Time) (PutResult, bool, error) {
		res := d.del(name, gen, force, now.UTC())
		if res.Applied {
			evicted = d.evict(t.opts.MaxClosed)
		}
		return res, res.Applied, nil
	})
	if err == nil {
		t.noteEvicted(evicted) // once the eviction is saved
	}
	return res, err
}

// Replace makes sites the whole table and forgets the closed sites (an
// operator's restore, tests). Every site is checked first; on error
// nothing changes.
func (t *Table) Replace(sites []Site) error {
	next := newTableData()
	for _, s := range sites {
		if err := s.Check(); err != nil {
			return err
		}
		if _, err := next.put(s, false); err != nil {
			return err
		}
	}
	_, err := t.run(func(d *tableData, _ time.Time) (PutResult, bool, error) {
		*d = *next
		return PutResult{Applied: true}, true, nil
	})
	return err
}

// run applies one change: in memory under the lock, else through the
// writer, returning once the change is in the state file.
func (t *Table) run(apply func(d *tableData, now time.Time) (PutResult, bool, error)) (PutResult, error) {
	if t.store == nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.d.expire(t.opts.now(), t.opts.ClosedRetention)
		res, _, err := apply(t.d, t.opts.now())
		return res, err
	}
	op := &tableOp{apply: apply, done: make(chan struct{})}
	select {
	case t.ops <- op:
	case <-t.quit:
		return PutResult{}, ErrTableClosed
	}
	<-op.done
	return op.res, op.err
}

// maxBatch bounds the changes one state file write covers.
const maxBatch = 1024

// sweepEvery is how often the writer looks for expired closed sites
// (a variable for tests).
var sweepEvery = time.Minute

// writer applies the changes waiting, in arrival order, to a copy of the
// table, writes it and makes it current; a write that fails fails every
// change of the batch and leaves the table as it was.
func (t *Table) writer() {
	defer close(t.done)
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		var batch []*tableOp
		select {
		case <-t.quit:
			return
		case op := <-t.ops:
			batch = append(batch, op)
		drain:
			for len(batch) < maxBatch {
				select {
				case op := <-t.ops:
					batch = append(batch, op)
				default:
					break drain
				}
			}
		case <-tick.C:
			t.mu.RLock()
			due := t.d.expiring(t.opts.now(), t.opts.ClosedRetention)
			t.mu.RUnlock()
			if !due {
				continue
			}
		}
		t.mu.RLock()
		next := t.d.clone() // the writer is the only one to change t.d
		t.mu.RUnlock()
		now := t.opts.now()
		changed := next.expire(now, t.opts.ClosedRetention) > 0
		for _, op := range batch {
			var ch bool
			op.res, ch, op.err = op.apply(next, now)
			changed = changed || ch
		}
		if changed {
			if err := t.store.write(next); err != nil {
				t.saveFailures.Add(1)
				tableEvents.WithLabelValues("save_failed").Inc()
				t.log.Error("site table not saved: changes refused", zap.String("file", t.store.path), zap.Int("changes", len(batch)), zap.Error(err))
				for _, op := range batch {
					op.res, op.err = PutResult{}, fmt.Errorf("%w: %w", ErrNotSaved, err)
				}
			} else {
				t.mu.Lock()
				t.d = next
				t.mu.Unlock()
			}
		}
		for _, op := range batch {
			close(op.done)
		}
	}
}

// noteEvicted counts and logs closed sites evicted by the cap.
func (t *Table) noteEvicted(evicted []ClosedSite) {
	for _, c := range evicted {
		t.evicted.Add(1)
		tableEvents.WithLabelValues("closed_evicted").Inc()
		t.log.Warn("closed site evicted: more closed sites than the cap", zap.String("site", c.Name),
			zap.Strings("hosts", c.Hosts), zap.Stringer("gen", c.Gen), zap.Time("closedAt", c.At), zap.Int("cap", t.opts.MaxClosed))
	}
}

// State is the table as GET AdminPath answers it, sites and closed sites
// in name order.
func (t *Table) State() TableState {
	cutoff := t.opts.now().Add(-t.opts.ClosedRetention)
	t.mu.RLock()
	sites := make([]Site, 0, len(t.d.sites))
	for _, s := range t.d.sites {
		sites = append(sites, s)
	}
	var closed []ClosedSite
	for _, c := range t.d.closed {
		if c.At.After(cutoff) {
			closed = append(closed, c)
		}
	}
	t.mu.RUnlock()
	sort.Slice(sites, func(i, j int) bool { return sites[i].Name < sites[j].Name })
	sort.Slice(closed, func(i, j int) bool { return closed[i].Name < closed[j].Name })
	return TableState{Started: t.started, Loaded: t.loaded, Digest: Digest(sites), Sites: sites, Closed: closed,
		Evicted: t.evicted.Load(), SaveFailures: t.saveFailures.Load()}
}
