package harness

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cdnflow/cdnflow/edge/connector"
)

// Base is a site table many stand-ins start from and share (read only):
// a fleet of 1,000 stand-ins with 10,000 sites each holds the 10,000
// entries once. Each stand-in keeps what it was told since in its own
// real connector.Table (the overlay), so a put, a generation check or a
// delete answers as an edge's connector does.
type Base struct {
	table  *connector.Table
	sites  []connector.Site // in name order
	digest string
}

// NewBase checks sites and makes them a shared starting table.
func NewBase(sites []connector.Site) (*Base, error) {
	t := connector.NewTable()
	if err := t.Replace(sites); err != nil {
		return nil, err
	}
	st := t.State()
	return &Base{table: t, sites: st.Sites, digest: st.Digest}, nil
}

// digestMemo maps an overlay's fingerprint (over one Base) to the digest
// of the whole table: stand-ins told the same changes share one digest
// computation.
var digestMemo sync.Map

// fleetTable is one stand-in's site table: base (nil: none) minus the
// names the overlay took over, plus the overlay's live entries.
type fleetTable struct {
	mu      sync.Mutex
	base    *Base
	overlay *connector.Table
	touched map[string]bool
	started time.Time
	state   *connector.TableState // cached view; nil after a change
}

func newFleetTable(base *Base) *fleetTable {
	return &fleetTable{base: base, overlay: connector.NewTable(), touched: map[string]bool{}, started: time.Now().UTC()}
}

// restart empties the table, as a connector restarted without its state
// file comes back.
func (t *fleetTable) restart() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.base, t.overlay, t.touched, t.state = nil, connector.NewTable(), map[string]bool{}, nil
	t.started = time.Now().UTC()
}

// take moves name from the base into the overlay before a change of it,
// so the overlay's generation rules see what the edge held.
func (t *fleetTable) take(name string) {
	t.state = nil
	if t.touched[name] {
		return
	}
	t.touched[name] = true
	if t.base == nil {
		return
	}
	if i, ok := slices.BinarySearchFunc(t.base.sites, name, func(s connector.Site, n string) int { return cmp.Compare(s.Name, n) }); ok {
		_, _ = t.overlay.Put(t.base.sites[i], true) // a base entry passed Check already
	}
}

func (t *fleetTable) put(s connector.Site, force bool) (connector.PutResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.take(s.Name)
	return t.overlay.Put(s, force)
}

func (t *fleetTable) del(name string, gen connector.Generation, force bool) (connector.PutResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.take(name)
	return t.overlay.Delete(name, gen, force)
}

func (t *fleetTable) replace(sites []connector.Site) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.base, t.touched, t.state = nil, map[string]bool{}, nil
	return t.overlay.Replace(sites)
}

// lookup is the live site serving host.
func (t *fleetTable) lookup(host string) (connector.Site, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.overlay.Lookup(host); ok {
		return s, true
	}
	if t.base == nil {
		return connector.Site{}, false
	}
	s, ok := t.base.table.Lookup(host)
	return s, ok && !t.touched[s.Name]
}

// view is the table as GET AdminPath answers it (Sites in name order;
// with sites false only Started and Digest are sure to be set). Its
// digest is computed once per distinct overlay over the same base, and
// a stand-in answering by digest builds no list.
func (t *fleetTable) view(sites bool) connector.TableState {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != nil {
		return *t.state
	}
	ov := t.overlay.State()
	st := connector.TableState{Started: t.started, Sites: ov.Sites, Closed: ov.Closed, Digest: ov.Digest}
	switch {
	case t.base == nil:
	case len(t.touched) == 0:
		st.Sites, st.Digest = t.base.sites, t.base.digest
	default:
		names := make([]string, 0, len(t.touched))
		for n := range t.touched {
			names = append(names, n)
		}
		slices.Sort(names)
		key := t.base.digest + "|" + ov.Digest + "|" + strings.Join(names, ",")
		if d, ok := digestMemo.Load(key); ok && !sites {
			st.Sites, st.Digest = nil, d.(string)
			return st // not cached: a later full read builds the list
		}
		all := slices.Clone(ov.Sites)
		for _, s := range t.base.sites {
			if !t.touched[s.Name] {
				all = append(all, s)
			}
		}
		slices.SortFunc(all, func(a, b connector.Site) int { return cmp.Compare(a.Name, b.Name) })
		st.Sites, st.Digest = all, connector.Digest(all)
		digestMemo.Store(key, st.Digest)
	}
	t.state = &st
	return st
}
