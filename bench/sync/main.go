// Command sync measures one edge sync round (activities.EdgeSync.SyncEdges,
// the activity the EdgeSyncWorkflow runs every 15 s) for D distributions
// on E simulated edges (bench/harness.StartFleet: Go stand-ins sharing one
// starting table of the D entries), in one process:
//
//  1. settled rounds: every edge holds the desired table; printed are the
//     round's wall time, the process CPU it took (the activity AND the
//     stand-ins answering it: an upper bound of the worker's), the heap
//     after it, and how each edge's table was read (by digest / whole);
//
//  2. a drift round: -drift edges get one entry changed behind the control
//     plane's back; the round reads those tables whole and heals them;
//
//  3. a change round: one distribution's desired entry gets a new
//     generation that no edge holds yet (what the sync sees when it reads
//     a change before the change's own apply reached the edges): every
//     edge differs from the desired table but holds the previous round's
//     known one, so it is compared against that from memory and gets only
//     the changed entry (EdgeSync.syncKnown); -change=false skips it.
//
// The last lines are the settled rounds' slowest wall time, most CPU and
// live heap beside issue 32's goals for a round (within its 15 s period,
// ≤ 1 CPU·s, ≤ 1 GiB of worker memory), and the process's peak RSS.
//
// The desired state is given to the activity directly (the visibility
// read of D distributions is not part of these figures), and the
// activity runs in the SDK's activity test environment (its input and
// output are encoded as on a worker; their sizes are printed: they are
// the history bytes a round adds).
//
//	go run ./bench/sync -edges 1000 -distributions 10000 -rounds 5
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/bench/harness"
	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/inventory"
)

const controlPlane = "bench"

func main() {
	edges := flag.Int("edges", 1000, "simulated edges")
	dists := flag.Int("distributions", 10000, "distributions (one site table entry each on every edge)")
	rounds := flag.Int("rounds", 5, "settled rounds to time")
	drift := flag.Int("drift", 10, "edges given one drifted entry before the drift round")
	change := flag.Bool("change", true, "time a round that finds one changed distribution on no edge")
	latency := flag.Duration("latency", 0, "added to every stand-in answer")
	loss := flag.Float64("loss", 0, "share of stand-in requests dropped")
	cpuProfile := flag.String("cpuprofile", "", "CPU profile of the settled rounds")
	flag.Parse()

	sim, err := harness.NewSimulated(*dists, controlPlane)
	if err != nil {
		log.Fatal(err)
	}
	base := sim.Base
	dir, err := os.MkdirTemp("", "cdnflow-bench-sync-")
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }() // a temp dir left behind only costs disk
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	fleet, err := harness.StartFleet(ctx, dir, "SIM", *edges, harness.FleetOptions{Base: base, Latency: *latency, Loss: *loss})
	for _, s := range fleet {
		defer s.Close()
	}
	if err != nil {
		log.Fatal(err)
	}
	b := newBench(fleet, sim)
	fmt.Printf("sync benchmark: %d distributions × %d simulated edges (fleet up in %s; latency %s, loss %.3f)\n",
		*dists, *edges, time.Since(start).Round(time.Millisecond), *latency, *loss)
	printLegend()
	b.round("first (VCL loaded on every edge)")
	stop := harness.StartCPUProfile(*cpuProfile)
	var settled roundFigures
	for i := 0; i < *rounds; i++ {
		settled = settled.worst(b.round(fmt.Sprintf("settled %d", i+1)))
	}
	stop()
	if n := min(*drift, len(fleet)); n > 0 {
		for i := 0; i < n; i++ {
			e, err := activities.EntryOf(sim.Specs[i%len(sim.Specs)])
			if err != nil {
				log.Fatal(err)
			}
			e.Owner = controlPlane
			e.Origins = slices.Clone(e.Origins)
			e.Origins[0].Path = "/planted"
			if _, err := fleet[i*len(fleet)/n].PutSite(e, true); err != nil {
				log.Fatal(err)
			}
		}
		b.round(fmt.Sprintf("drift (%d edges drifted)", n))
		b.round("after drift")
	}
	if *change {
		sim.Specs[0] = harness.SimulatedSpec(0, 2, "/v2")
		b.round("change (1 distribution new on no edge)")
		b.round("after change")
	}
	printGoals(settled, *rounds)
}

// roundFigures are one round's load-independent and wall figures.
type roundFigures struct {
	wall time.Duration
	cpu  time.Duration // the whole process's: activity and stand-ins
	heap uint64        // live heap after the round, bytes
}

// worst keeps the larger of each figure.
func (f roundFigures) worst(g roundFigures) roundFigures {
	return roundFigures{wall: max(f.wall, g.wall), cpu: max(f.cpu, g.cpu), heap: max(f.heap, g.heap)}
}

// printLegend says what each column of a round's line is.
func printLegend() {
	fmt.Println("  (wall: the round's time, every 15 s on a worker; CPU: the whole process's CPU·s, the activity and" +
		" the stand-ins answering it, an upper bound of the worker's; heap: live heap after the round, + what it grew since" +
		" the fleet was up; tables by digest / whole: edges that answered their digest only / their whole table;" +
		" changes: site entries put or deleted; drift: edges that differed from the desired state)")
}

// printGoals prints the settled rounds' worst figures beside issue 32's
// goals for a sync round of 10,000 distributions × 1,000 edges, and the
// process's peak RSS (fleet, activity and test environment together).
func printGoals(f roundFigures, rounds int) {
	if rounds > 0 {
		fmt.Printf("  settled round, worst of %d: wall %s (goal: within the 15 s period), CPU %.3f CPU·s (goal ≤ 1),"+
			" live heap %d MiB (goal ≤ 1 GiB of worker memory)\n",
			rounds, f.wall.Round(time.Millisecond), f.cpu.Seconds(), f.heap>>20)
	}
	fmt.Printf("  peak resident set of the process (fleet, activity, test environment): %d MiB\n", maxRSS()>>20)
}

type bench struct {
	fleet []*harness.StandIn
	env   *testsuite.TestActivityEnvironment
	a     *activities.EdgeSync
	last  map[string]activities.EdgeSyncReport
	heap0 uint64
}

func newBench(fleet []*harness.StandIn, d activities.DesiredSites) *bench {
	var list []inventory.Edge
	for _, s := range fleet {
		list = append(list, s.Edge)
	}
	inv, err := inventory.New(list)
	if err != nil {
		log.Fatal(err)
	}
	a := &activities.EdgeSync{EdgeConfig: activities.EdgeConfig{ControlPlane: controlPlane}, Inventory: inv,
		Edges: edge.NewClient(edge.Options{}), Desired: d}
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	env.SetTestTimeout(10 * time.Minute)
	return &bench{fleet: fleet, env: env, a: a, heap0: heapInUse()}
}

// round runs one SyncEdges, prints its figures and returns them.
func (b *bench) round(name string) roundFigures {
	before := map[string]int64{}
	for _, k := range []string{"admin-digest", "admin-entries", "admin-change"} {
		before[k] = b.total(k)
	}
	in := activities.SyncEdgesInput{Last: b.last}
	inBytes, _ := json.Marshal(in)
	cpu0, t0 := harness.ProcessCPU(), time.Now()
	val, err := b.env.ExecuteActivity(b.a.SyncEdges, in)
	if err != nil {
		log.Fatalf("round %s: %v", name, err)
	}
	wall, cpu := time.Since(t0), harness.ProcessCPU()-cpu0
	var reports []activities.EdgeSyncReport
	if err := val.Get(&reports); err != nil {
		log.Fatal(err)
	}
	outBytes, _ := json.Marshal(reports)
	b.last = map[string]activities.EdgeSyncReport{}
	errs, drifted, compared := 0, 0, 0
	for _, r := range reports {
		b.last[r.EdgeID] = r
		compared += r.Compared
		if r.Error != "" {
			errs++
		}
		if len(r.Drift) > 0 {
			drifted++
		}
	}
	heap := heapInUse()
	fmt.Printf("  %-40s wall %8s  CPU %7.3f s  heap %5d MiB (+%d)  tables by digest %4d, whole %4d, changes %5d  entries compared %8d  drift %d  errors %d  payload in %d kB, out %d kB\n",
		name, wall.Round(time.Millisecond), cpu.Seconds(), heap>>20, int64(heap>>20)-int64(b.heap0>>20),
		b.total("admin-digest")-before["admin-digest"], b.total("admin-entries")-before["admin-entries"],
		b.total("admin-change")-before["admin-change"], compared, drifted, errs, len(inBytes)>>10, len(outBytes)>>10)
	return roundFigures{wall: wall, cpu: cpu, heap: heap}
}

func (b *bench) total(kind string) int64 {
	var n int64
	for _, s := range b.fleet {
		n += s.Count(kind)
	}
	return n
}

// heapInUse is the live heap after a collection (bytes).
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// maxRSS is the process's peak resident set (bytes).
func maxRSS() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Maxrss << 10
}
