package activities

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/inventory"
)

// desiredRefresh is the least time between two reads of the desired state
// within one round (roundDesired.refresh): about one rollout wave
// (a wave's apply plus the default 1 s bake).
const desiredRefresh = time.Second

// desiredView is one read of the desired state: the fleet's common table
// and, per edge, the entries of the rollouts in flight that reached it.
type desiredView struct {
	w    wanted
	over map[string]map[string]connector.Site // edge id → rollout entries
	// per are the tables of the edges with rollout entries, made once per
	// set of entries (wanted.on copies the whole table).
	mu  sync.Mutex
	per map[string]wanted
}

// on is edge id's desired table in v.
func (v *desiredView) on(id string) wanted {
	over := v.over[id]
	if len(over) == 0 {
		return v.w
	}
	key := strings.Join(rolloutNames(over), ",")
	if len(over) > maxReportNames {
		// rolloutNames stops at maxReportNames: the whole set is the key.
		key = strings.Join(slices.Sorted(maps.Keys(over)), ",") + "|" + key
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if w, ok := v.per[key]; ok {
		return w
	}
	w := v.w.on(over)
	if v.per == nil {
		v.per = map[string]wanted{}
	}
	v.per[key] = w
	return w
}

// roundDesired is one round's desired state. A round reads it once at its
// start; a change that reaches an edge later in the round (a rollout wave
// applied while the round runs: at 1,000 edges a round lasts seconds)
// leaves that edge with a table that is neither the desired one nor a
// known one, which costs reading and comparing its whole table
// (thousands of entries) on every edge the change reached. So when an
// edge answers such a table, the desired state is read again (refresh:
// at most once every desiredRefresh, one read for all the edges of the
// round that wait on it) and the edge is asked again by the fresh
// digest. Safe for concurrent use.
type roundDesired struct {
	a      *EdgeSync
	mu     sync.Mutex
	cur    *desiredView
	readAt time.Time
	// refreshes counts the reads after the first (bounded by the round's
	// length over desiredRefresh).
	refreshes int
}

// view is the latest desired state read.
func (r *roundDesired) view() *desiredView {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// refresh answers a desired state newer than seen: the one read since, or
// one read now unless the last read is less than desiredRefresh old (then
// seen itself). A failed read answers seen (the edge is compared whole,
// as without the refresh).
func (r *roundDesired) refresh(ctx context.Context, seen *desiredView) *desiredView {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != seen {
		return r.cur
	}
	every := r.a.refreshEvery
	if every <= 0 {
		every = desiredRefresh
	}
	if time.Since(r.readAt) < every {
		return seen
	}
	readAt := time.Now()
	v, err := r.a.readDesired(ctx)
	if err != nil {
		logger(ctx).Warn("desired state read again: failed; edges compared whole", "error", err)
		r.readAt = readAt
		return seen
	}
	r.cur, r.readAt = v, readAt
	r.refreshes++
	return v
}

// unknownTable says whether a read answered a table neither desired nor
// known (its entries came with it): the case roundDesired.refresh is for.
func unknownTable(e connector.TableState, read string, err error) bool {
	return err == nil && read == "entries" && e.Sites != nil
}

// readFresh reads e's table (readTable) against the round's latest
// desired state, and when it answers an unknown table, compares it by
// digest with a fresh read of the desired state (roundDesired.refresh).
// It answers e's desired table as compared and sets rep.Rollouts from it.
func (a *EdgeSync) readFresh(ctx context.Context, e inventory.Edge, rd *roundDesired, rep *EdgeSyncReport) (wanted, connector.TableState, string, error) {
	v := rd.view()
	w := v.on(e.ID)
	st, read, err := a.readTable(ctx, e, w)
	if !e.Drain && unknownTable(st, read, err) {
		// A change may have reached the edge since the desired state was
		// read: compare by the digest of a fresh read.
		if fresh := rd.refresh(ctx, v); fresh != v {
			if v, w = fresh, fresh.on(e.ID); st.Digest == w.digest() {
				st.Sites, read = nil, "digest" // as readTable answers a table as desired
			}
		}
	}
	rep.Rollouts = rolloutNames(v.over[e.ID])
	return w, st, read, err
}
