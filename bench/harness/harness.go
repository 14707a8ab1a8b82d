// Package harness starts a whole cdnflow for benchmarks: embedded Temporal
// on a SQLite file, real varnishd edges, a fast Go origin, the worker and
// the API on loopback — assembled by stack, as `cdnflow dev` is,
// sized by flags.
package harness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/activities"
	"github.com/cdnflow/cdnflow/config"
	"github.com/cdnflow/cdnflow/edge/connector"
	"github.com/cdnflow/cdnflow/edge/varnishd"
	"github.com/cdnflow/cdnflow/edge/vcl"
	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/stack"
	"github.com/cdnflow/cdnflow/stack/cluster"
)

// Stack is a running cdnflow.
type Stack struct {
	Config     config.Config
	Inventory  *inventory.Inventory
	APIURL     string
	OriginAddr string
	Dir        string
	// Temporal is the stack's own client (the API and worker share it);
	// nil on a cluster.
	Temporal client.Client
	// Payloads is the stack's claim-check store (nil on a cluster): a
	// benchmark that builds its own service.Service shares it.
	Payloads payload.Store
	// Cluster is set by StartCluster: every part its own process.
	Cluster *cluster.Cluster
	// Origin counts the requests the benchmark's origin serves (nil on a
	// cluster): a benchmark reads when edges first and last fetched.
	Origin *OriginClock
	// StandIns are the simulated edges (Options.StandIns), in inventory
	// order.
	StandIns []*StandIn
	stops    []func()
}

// OriginClock wraps the origin handler and keeps the times of the first
// and the last request since Reset.
type OriginClock struct {
	next        http.Handler
	first, last atomic.Int64 // Unix nanoseconds; 0: none yet
}

func (o *OriginClock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UnixNano()
	o.first.CompareAndSwap(0, now)
	o.last.Store(now)
	o.next.ServeHTTP(w, r)
}

// Reset forgets the times seen so far; a nil clock (cluster) does nothing.
func (o *OriginClock) Reset() {
	if o != nil {
		o.first.Store(0)
		o.last.Store(0)
	}
}

// Span returns the first and the last request's times since Reset (zero
// times when there was none).
func (o *OriginClock) Span() (first, last time.Time) {
	if o == nil {
		return time.Time{}, time.Time{}
	}
	f, l := o.first.Load(), o.last.Load()
	if f == 0 {
		return time.Time{}, time.Time{}
	}
	return time.Unix(0, f), time.Unix(0, l)
}

// Options size the stack.
type Options struct {
	Edges int
	// StandIns: the edges are lightweight Go stand-ins (StartStandIns)
	// instead of varnishd, for fleet-sized runs.
	StandIns bool
	// Fleet shapes the stand-ins (latency, loss, restarts).
	Fleet     FleetOptions
	Configure func(*config.Config)
	// Simulated (stand-ins only) puts this many simulated distributions
	// (NewSimulated) in every stand-in's table and in the edge sync's
	// desired state, as a fleet's other distributions, without their
	// workflows.
	Simulated int
	// Shield (varnishd only): one more edge, started first, is the parent
	// (docs/tiers.md) of the Edges others, which fetch their misses from
	// it.
	Shield bool
	// Logger takes the stack's logs (worker, API, embedded Temporal); nil:
	// none, or development logs to stderr with CDNFLOW_BENCH_LOG set.
	Logger *zap.Logger
}

// Start brings everything up through stack.Start (the assembler of
// `cdnflow dev`), with benchmark-sized edges and a padded origin; Stop
// tears it down.
func Start(ctx context.Context, o Options) (*Stack, error) {
	dir, err := os.MkdirTemp("", "cdnflow-bench-")
	if err != nil {
		return nil, err
	}
	s := &Stack{Dir: dir}
	s.stops = append(s.stops, func() { _ = os.RemoveAll(dir) }) // a temp dir left behind only costs disk
	if err := s.start(ctx, o); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Stack) start(ctx context.Context, o Options) error {
	logger := zap.NewNop()
	switch {
	case o.Logger != nil:
		logger = o.Logger
	case os.Getenv("CDNFLOW_BENCH_LOG") != "":
		logger, _ = zap.NewDevelopment()
	}
	s.Origin = &OriginClock{next: &origin.Handler{BodySize: 2048}}
	originSrv := httptest.NewUnstartedServer(s.Origin)
	originSrv.Config.ReadHeaderTimeout = 5 * time.Second
	originSrv.Start()
	s.stops = append(s.stops, originSrv.Close)
	s.OriginAddr = originSrv.Listener.Addr().String()

	cfg := config.Default()
	cfg.DataDir = filepath.Join(s.Dir, "data")
	cfg.DefaultOrigin = s.OriginAddr
	_, originPort, _ := net.SplitHostPort(s.OriginAddr)
	cfg.OriginAllowLoopback = []string{originPort} // the benchmark's own origin
	cfg.LogLevel = "error"
	cfg.APIAddr = "127.0.0.1:0"
	cfg.TemporalPort, cfg.TemporalUIPort = 0, -1
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	var more activities.DesiredSites
	if o.Simulated > 0 && o.StandIns {
		sim, err := NewSimulated(o.Simulated, cfg.ControlPlane())
		if err != nil {
			return err
		}
		o.Fleet.Base, more = sim.Base, sim
	}
	edges, err := s.startEdges(ctx, o)
	if err != nil {
		return err
	}
	inv, err := inventory.New(edges)
	if err != nil {
		return err
	}
	st, err := stack.Start(ctx, stack.Options{Config: cfg, Inventory: inv, Logger: logger, MoreDesired: more})
	if err != nil {
		return err
	}
	s.stops = append(s.stops, func() { _ = st.Stop() })
	s.Config, s.Inventory, s.Temporal = st.Config, st.Inventory, st.Client
	s.Payloads = st.Payloads
	// The API serves once stack.Start returns.
	s.APIURL = "http://" + st.APIAddr
	if o.StandIns {
		return nil // stand-ins compile no VCL
	}
	return s.waitEdgesSynced(ctx)
}

// startEdges starts the varnishd edges or the stand-ins.
func (s *Stack) startEdges(ctx context.Context, o Options) ([]inventory.Edge, error) {
	if o.StandIns {
		ins, err := StartFleet(ctx, filepath.Join(s.Dir, "edges"), "SIN", o.Edges, o.Fleet)
		s.StandIns = ins
		var edges []inventory.Edge
		for _, in := range ins {
			s.stops = append(s.stops, in.Close)
			edges = append(edges, in.Edge)
		}
		return edges, err
	}
	if o.Shield {
		edges, procs, err := startTiered(ctx, filepath.Join(s.Dir, "edges"), o.Edges, s.OriginAddr)
		for _, p := range procs {
			s.stops = append(s.stops, func() { _ = p.Stop(context.Background()) })
		}
		return edges, err
	}
	edges, procs, err := StartEdges(ctx, filepath.Join(s.Dir, "edges"), "BEN", o.Edges, s.OriginAddr)
	for _, p := range procs {
		s.stops = append(s.stops, func() { _ = p.Stop(context.Background()) })
	}
	return edges, err
}

// Stop stops everything in reverse order.
func (s *Stack) Stop() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
}

// StartEdges starts n varnishd edges that fetch from originAddr, each
// through its own origin connector (loopback admitted for the origin's
// port only), served until ctx ends.
func StartEdges(ctx context.Context, dir, prefix string, n int, originAddr string) ([]inventory.Edge, []*varnishd.Process, error) {
	return startEdges(ctx, dir, prefix, n, originAddr, nil)
}

// startEdges is StartEdges; a non-nil parent is every edge's shield.
func startEdges(ctx context.Context, dir, prefix string, n int, originAddr string, parent *inventory.Edge) ([]inventory.Edge, []*varnishd.Process, error) {
	host, port, _ := net.SplitHostPort(originAddr)
	p, _ := strconv.Atoi(port)
	var edges []inventory.Edge
	var procs []*varnishd.Process
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s%02d-C1", prefix, i+1)
		httpAddr, err := varnishd.FreeLoopbackAddr()
		if err != nil {
			return nil, procs, err
		}
		adminAddr, err := varnishd.FreeLoopbackAddr()
		if err != nil {
			return nil, procs, err
		}
		cAddr, err := startConnector(ctx, port, parent)
		if err != nil {
			return nil, procs, err
		}
		secret := filepath.Join(dir, id+".secret")
		if err := varnishd.EnsureSecret(secret); err != nil {
			return nil, procs, err
		}
		token, err := connector.ControlTokenFile(secret)
		if err != nil {
			return nil, procs, err
		}
		src, err := vcl.Render(vcl.Config{EdgeID: id, ConnectorPort: cAddr.Port, DefaultBackend: &vcl.Backend{Host: host, Port: p}, ControlToken: token})
		if err != nil {
			return nil, procs, err
		}
		e := inventory.Edge{ID: id, Region: "us", Country: "united_states", Address: httpAddr, AdminAddress: adminAddr,
			ConnectorAddress: cAddr.String(), SecretFile: secret, Kind: inventory.KindVarnish}
		if parent != nil {
			e.Parent = parent.ID
		}
		proc, err := varnishd.Start(ctx, varnishd.Options{Name: id, WorkDir: filepath.Join(dir, id), ListenAddr: httpAddr,
			AdminAddr: adminAddr, SecretFile: e.SecretFile, VCL: src, StorageMB: 512,
			Params: map[string]string{"thread_pool_max": "2000"}})
		if err != nil {
			return nil, procs, err
		}
		procs = append(procs, proc)
		edges = append(edges, e)
	}
	return edges, procs, nil
}

// startConnector serves an origin connector on a free loopback port until
// ctx ends, admitting the loopback origin port originPort.
func startConnector(ctx context.Context, originPort string, parent *inventory.Edge) (*net.TCPAddr, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	co := connector.Options{Listen: ln.Addr().String(), AllowLoopback: []string{originPort}}
	if parent != nil {
		co.Parent = &connector.Parent{ID: parent.ID, Address: parent.Address, Fallback: true}
	}
	c, err := connector.New(co)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	go func() { defer c.Close(); _ = c.Serve(ctx, ln) }()
	return ln.Addr().(*net.TCPAddr), nil
}

// Raw sends method path to every edge for every path with a plain
// concurrent Go client (perEdge connections each): the limit cdnflow is
// measured against. It returns the elapsed time and the failures.
func Raw(edges []inventory.Edge, method, host string, paths []string, perEdge int) (time.Duration, int64) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: perEdge, MaxConnsPerHost: perEdge, DisableCompression: true}}
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, e := range edges {
		work := make(chan string)
		// PURGE and BAN are control requests: they need the edge's token
		// (the edge drops it from anything else).
		token, _ := connector.ControlTokenFile(e.SecretFile)
		for w := 0; w < perEdge; w++ {
			wg.Add(1)
			go func(addr string) {
				defer wg.Done()
				for p := range work {
					req, _ := http.NewRequest(method, "http://"+addr+p, nil)
					req.Host = host
					req.Header.Set("Accept-Encoding", "gzip, deflate, br")
					if token != "" {
						req.Header.Set(connector.HeaderControl, token)
					}
					resp, err := client.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failed.Add(1)
					}
				}
			}(e.Address)
		}
		go func() {
			for _, p := range paths {
				work <- p
			}
			close(work)
		}()
	}
	wg.Wait()
	return time.Since(start), failed.Load()
}
