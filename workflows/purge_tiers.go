package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cdnflow/cdnflow/activities"
)

// changePurgeTiers: a purge of tiered edges (PurgeSeq.Parents) reaches
// every shield first and a shield's children only once it confirmed;
// catch-up follows the same order (docs/tiers.md). A child purged before
// its parent would refill from the parent's stale copy (the shield/edge
// purge race Fastly documents; Wikimedia's purger orders its tiers too).
const changePurgeTiers = "purge-tiers"

// changeSoftPurgeShields: a soft purge of tiered edges purges the shields
// hard and soft-purges only their children. A soft purge keeps the old
// copy in grace (Varnish purge.soft), and a shield in grace would answer
// a child's refresh with that copy, which the child then stores as fresh
// (docs/tiers.md). Untiered edges and children keep the soft purge.
const changeSoftPurgeShields = "purge-tiers-soft-shields"

// purgeGroups splits req.EdgeIDs into the edges without tiers (solo) and,
// per shield, the shield and its children, in EdgeIDs order.
func purgeGroups(req PurgeSeq) (solo, shields []string, children map[string][]string) {
	children = map[string][]string{}
	for _, id := range req.EdgeIDs {
		if p, ok := req.Parents[id]; ok {
			children[p] = append(children[p], id)
		}
	}
	for _, id := range req.EdgeIDs {
		if _, child := req.Parents[id]; child {
			continue
		}
		if len(children[id]) > 0 {
			shields = append(shields, id)
		} else {
			solo = append(solo, id)
		}
	}
	return solo, shields, children
}

// purgeTiered applies the purge with purgeAllEdges per group, the groups
// at once (a coroutine each): the edges without tiers together, and per
// shield the shield (a hard purge where req is soft), then — once it
// confirmed — its children with what is left of the deadline. Until then
// the children's rows say they wait for the shield; children of a shield
// that did not confirm are not purged (their catch-up waits for the
// shield's). It answers how many edges confirmed.
func purgeTiered(ctx workflow.Context, req PurgeSeq, st *PurgeStatus, deadline time.Duration) int {
	start := workflow.Now(ctx)
	solo, shields, children := purgeGroups(req)
	shieldReq := req
	if req.Soft && len(shields) > 0 && workflow.GetVersion(ctx, changeSoftPurgeShields, workflow.DefaultVersion, 1) == 1 {
		shieldReq.Soft = false
	}
	wg := workflow.NewWaitGroup(ctx)
	run := func(ids, then []string) {
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			sub := req
			if len(then) > 0 {
				sub = shieldReq
			}
			sub.EdgeIDs = ids
			markWaiting(st, then, waitingForParent(ids[0]))
			purgeAllEdges(gctx, sub, st, deadline)
			if len(then) == 0 {
				return
			}
			sub.Soft = req.Soft
			if i := edgeIndex(st, ids[0]); i < 0 || !st.Edges[i].Confirmed {
				return
			}
			markWaiting(st, then, "")
			sub.EdgeIDs = then
			purgeAllEdges(gctx, sub, st, max(deadline-workflow.Now(gctx).Sub(start), time.Second))
		})
	}
	if len(solo) > 0 {
		run(solo, nil)
	}
	for _, s := range shields {
		run([]string{s}, children[s])
	}
	wg.Wait(ctx)
	return confirmedEdges(st)
}

// waitingForParent is the error a child of shield shows while shield has
// not confirmed the purge.
func waitingForParent(shield string) string {
	return "waiting for parent " + shield + " to confirm the purge"
}

// markWaiting sets the error of the edges ids to reason: a shield's
// children say they wait for it from the start of its purge until it
// confirmed (then "", before their own purge), so the receipt
// (QueryPurgeStatus) names why a child is not purged yet while the shield
// is still retrying. State only: no command is added.
func markWaiting(st *PurgeStatus, ids []string, reason string) {
	for _, id := range ids {
		if j := edgeIndex(st, id); j >= 0 {
			st.Edges[j].Error = reason
		}
	}
}

func edgeIndex(st *PurgeStatus, id string) int {
	for i, e := range st.Edges {
		if e.EdgeID == id {
			return i
		}
	}
	return -1
}

// catchUpTiered is catchUp in tier order: every unconfirmed edge is owed
// a ban of the purge's hosts; a child whose parent is owed too gets its
// catch-up only once the parent caught up (then with what is left of
// req.CatchUp). It answers how many edges caught up.
func catchUpTiered(ctx workflow.Context, req PurgeSeq, st *PurgeStatus, confirmed int) int {
	began := workflow.Now(ctx)
	var a *activities.Purge
	sel := workflow.NewSelector(ctx)
	pending, caught := 0, 0
	waiting := map[string][]int{} // owed parent → its owed children
	var send func(i int)
	send = func(i int) {
		left := max(req.CatchUp-workflow.Now(ctx).Sub(began), time.Second)
		cctx := workflow.WithActivityOptions(ctx, catchUpOptions(left))
		f := workflow.ExecuteActivity(cctx, a.CatchUpEdge, activities.CatchUpEdgeInput{EdgeID: st.Edges[i].EdgeID, Hosts: req.Hosts})
		pending++
		sel.AddFuture(f, func(f workflow.Future) {
			var res activities.CatchUpEdgeResult
			if err := f.Get(ctx, &res); err != nil {
				st.Edges[i].Error = rootMessage(err)
				return
			}
			caught++
			markCaughtUp(ctx, st, i, res, confirmed+caught, len(req.EdgeIDs))
			for _, j := range waiting[st.Edges[i].EdgeID] {
				send(j)
			}
		})
	}
	var now []int
	for i := range st.Edges {
		if st.Edges[i].Confirmed {
			continue
		}
		st.Edges[i].Owed = true
		if p, ok := req.Parents[st.Edges[i].EdgeID]; ok {
			if j := edgeIndex(st, p); j >= 0 && !st.Edges[j].Confirmed {
				waiting[p] = append(waiting[p], i)
				st.Edges[i].Error = "catch-up waits for parent " + p
				continue
			}
		}
		now = append(now, i)
	}
	for _, i := range now {
		send(i)
	}
	for pending > 0 {
		pending--
		sel.Select(ctx)
	}
	return caught
}

// catchUpOptions: CatchUpEdge retried with backoff for up to left.
func catchUpOptions(left time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		ScheduleToCloseTimeout: left,
		StartToCloseTimeout:    2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        500 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrUnknownEdge, activities.ErrBadPurge},
		},
	}
}
