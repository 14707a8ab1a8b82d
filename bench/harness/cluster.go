package harness

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cdnflow/cdnflow/internal/origin"
	"github.com/cdnflow/cdnflow/inventory"
	"github.com/cdnflow/cdnflow/stack/cluster"
)

// ClusterOptions size a benchmark cluster (stack/cluster): every part
// its own process, Temporal on PostgreSQL.
type ClusterOptions struct {
	Edges   int
	Workers int
	// BinDir holds cdnflow, temporal-server, temporal-sql-tool and
	// versitygw (`make cluster-bins` puts them in bin/).
	BinDir string
	// ServerEnv are extra NAME=value variables of the workers and APIs
	// (cluster.Options.ServerEnv).
	ServerEnv []string
}

// StartCluster brings up a local cluster in a temp dir on free ports, with
// the benchmark's padded origin as the edges' origin; Stop takes it down.
// Stack.Cluster lets a benchmark stop and start workers between runs.
func StartCluster(ctx context.Context, o ClusterOptions) (*Stack, error) {
	dir, err := os.MkdirTemp("", "cdnflow-bench-cluster-")
	if err != nil {
		return nil, err
	}
	// PostgreSQL runs as the postgres user when started by root.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Stack{Dir: dir}
	s.stops = append(s.stops, func() { _ = os.RemoveAll(dir) }) // a temp dir left behind only costs disk
	originSrv := httptest.NewUnstartedServer(&origin.Handler{BodySize: 2048})
	originSrv.Config.ReadHeaderTimeout = 5 * time.Second
	originSrv.Start()
	s.stops = append(s.stops, originSrv.Close)
	s.OriginAddr = originSrv.Listener.Addr().String()
	opts, err := clusterOptions(o, filepath.Join(dir, "cluster"), s.OriginAddr)
	if err != nil {
		s.Stop()
		return nil, err
	}
	c, err := cluster.New(opts)
	if err != nil {
		s.Stop()
		return nil, err
	}
	s.stops = append(s.stops, func() { _ = cluster.Down(opts.Dir) })
	if err := c.Up(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	s.Cluster, s.Inventory = c, c.Inventory()
	s.APIURL = c.APIURLs()[0]
	return s, nil
}

func clusterOptions(o ClusterOptions, dir, originAddr string) (cluster.Options, error) {
	_, originPort, _ := net.SplitHostPort(originAddr)
	opts := cluster.Options{Dir: dir, BinDir: o.BinDir, DefaultOrigin: originAddr, OriginAllowLoopback: []string{originPort},
		UIPort: -1, ServerEnv: o.ServerEnv, WorkerMetricsAddrs: []string{}}
	addrs, err := freeAddrs(3 + o.Workers + 3*o.Edges)
	if err != nil {
		return opts, err
	}
	next := func() string { a := addrs[0]; addrs = addrs[1:]; return a }
	opts.APIAddrs = []string{next()}
	_, pg, _ := net.SplitHostPort(next())
	opts.PGPort, _ = strconv.Atoi(pg)
	_, s3, _ := net.SplitHostPort(next())
	opts.ObjectStorePort, _ = strconv.Atoi(s3)
	for i := 0; i < o.Workers; i++ {
		opts.WorkerMetricsAddrs = append(opts.WorkerMetricsAddrs, next())
	}
	// Temporal's membership ports must stay below 32768.
	opts.TemporalPort = 21000 + os.Getpid()%5000
	for i := 0; i < o.Edges; i++ {
		id := fmt.Sprintf("BEN%02d-C1", i+1)
		opts.Edges = append(opts.Edges, inventory.Edge{ID: id, Region: "us", Country: "united_states", Address: next(),
			AdminAddress: next(), ConnectorAddress: next(), SecretFile: id + ".secret", Kind: inventory.KindVarnish})
	}
	return opts, nil
}

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago (all held open together, so no two are the same port).
func freeAddrs(n int) ([]string, error) {
	var out []string
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer func() { _ = l.Close() }() // held open only to reserve the port
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// SetWorkers runs the first n workers of a cluster Stack and stops the
// others (SIGTERM: they hand their work over).
func (s *Stack) SetWorkers(ctx context.Context, n int) error {
	for i := range s.Cluster.Options().WorkerMetricsAddrs {
		name := cluster.WorkerName(i)
		if i < n {
			if err := s.Cluster.Start(ctx, name); err != nil {
				return err
			}
			continue
		}
		if err := s.Cluster.Stop(name, syscall.SIGTERM, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}
