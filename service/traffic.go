package service

import (
	"context"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cdnflow/cdnflow/edge"
	"github.com/cdnflow/cdnflow/edge/traffic"
	"github.com/cdnflow/cdnflow/inventory"
)

// trafficTimeout bounds one edge's answer to a live traffic read: an
// edge that is slower is reported with its error, so the answer stays at
// most ~2 s behind the edges.
const trafficTimeout = 1500 * time.Millisecond

// trafficSinceSkew is how far a since may be ahead of the control
// plane's clock (clocks of browser, control plane and edges differ by
// seconds); later is refused as invalid.
const trafficSinceSkew = 10 * time.Second

// trafficEdges is the client of live traffic reads (control requests
// with the edge's token, connector.TrafficPath).
var trafficEdges = sync.OnceValue(func() *edge.Client {
	return edge.NewClient(edge.Options{SiteTimeout: trafficTimeout})
})

// TrafficQuery selects live traffic: Distribution (a domain, or
// traffic.OtherDistribution; "" every one), Edge (an inventory id; ""
// every edge), Step ("1s": the last traffic.Seconds seconds, "1m": the
// last day, of one named Distribution only) and Since (Unix seconds; 0: the whole ring; at most
// trafficSinceSkew ahead of now).
type TrafficQuery struct {
	Distribution string
	Edge         string
	Step         string
	Since        int64
}

// EdgeTraffic is one edge's answer, or why it has none.
type EdgeTraffic struct {
	Edge   string           `json:"edge"`
	Now    int64            `json:"now,omitempty"`
	Error  string           `json:"error,omitempty"`
	Series []traffic.Series `json:"series"`
}

// TrafficView is GET /v1/traffic: each edge's series, and per
// distribution the sum over the edges that answered (Edge "").
type TrafficView struct {
	Step  string           `json:"step"`
	Edges []EdgeTraffic    `json:"edges"`
	Total []traffic.Series `json:"total"`
}

// Traffic gathers live traffic from the edges (in parallel, each within
// trafficTimeout). Errors: an invalid query (*ValidationError: a bad
// step, distribution, edge or future since, step 1m without a
// distribution, or an answer over MaxTrafficPoints); an edge that
// does not answer is reported in its row, not as an error.
func (s *Service) Traffic(ctx context.Context, q TrafficQuery) (TrafficView, error) {
	edges, err := s.trafficEdges(q)
	if err != nil {
		return TrafficView{}, err
	}
	v := url.Values{}
	if q.Distribution != "" {
		v.Set("distribution", q.Distribution)
	}
	v.Set("step", q.Step)
	if q.Since > 0 {
		v.Set("since", strconv.FormatInt(q.Since, 10))
	}
	out := TrafficView{Step: q.Step, Edges: make([]EdgeTraffic, len(edges))}
	var wg sync.WaitGroup
	for i, e := range edges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := EdgeTraffic{Edge: e.ID, Series: []traffic.Series{}}
			rep, err := trafficEdges().Traffic(ctx, e, v)
			if err != nil {
				row.Error = err.Error()
			} else {
				row.Now, row.Series = rep.Now, rep.Series
			}
			out.Edges[i] = row
		}()
	}
	wg.Wait()
	out.Total = sumTraffic(out.Edges)
	return out, nil
}

// trafficEdges checks q and answers the edges it reads.
func (s *Service) trafficEdges(q TrafficQuery) ([]inventory.Edge, error) {
	if q.Step != "1s" && q.Step != "1m" {
		return nil, invalid("step %q is 1s or 1m", q.Step)
	}
	if q.Since > time.Now().Add(trafficSinceSkew).Unix() {
		return nil, invalid("since %d is in the future (more than %s ahead of the control plane's clock)", q.Since, trafficSinceSkew)
	}
	if d := q.Distribution; d != "" && d != traffic.OtherDistribution && !validHostname(strings.ToLower(d)) {
		return nil, invalid("distribution %q is not a domain", d)
	}
	if q.Step == "1m" && q.Distribution == "" {
		return nil, invalid("step 1m reads one distribution: name it")
	}
	edges := s.inventory.Edges
	if q.Edge != "" {
		e, ok := s.inventory.Get(q.Edge)
		if !ok {
			return nil, invalid("unknown edge %q", q.Edge)
		}
		edges = []inventory.Edge{e}
	}
	if n := trafficPoints(q, len(edges), time.Now().Unix()); n > MaxTrafficPoints {
		return nil, invalid("the answer would hold up to %d points, over the limit of %d: name a distribution or an edge, or give a later since", n, MaxTrafficPoints)
	}
	return edges, nil
}

// MaxTrafficPoints bounds the points of one GET /v1/traffic answer (each
// edge's series; the totals add at most as many again): about 20-40 MB
// of JSON, two edges' whole second rings of every distribution.
const MaxTrafficPoints = 2 * (traffic.DefaultMaxDistributions + 1) * traffic.Seconds

// trafficPoints is the most points q can answer from n edges at now
// (Unix seconds): buckets from since (or the whole ring) times the
// distributions an edge tracks (one when q names it).
func trafficPoints(q TrafficQuery, n int, now int64) int {
	step, buckets := int64(1), int64(traffic.Seconds)
	if q.Step == "1m" {
		step, buckets = 60, traffic.Minutes
	}
	if q.Since > 0 {
		buckets = max(1, min(buckets, (now-q.Since)/step+2))
	}
	per := int(buckets)
	if q.Distribution == "" {
		per *= traffic.DefaultMaxDistributions + 1
	}
	return per * n
}

// sumTraffic adds the series of every edge per distribution, bucket by
// bucket (edges' clocks agree to the second on one host or with NTP).
func sumTraffic(rows []EdgeTraffic) []traffic.Series {
	byDist := map[string]map[int64]traffic.Point{}
	for _, r := range rows {
		for _, s := range r.Series {
			m := byDist[s.Distribution]
			if m == nil {
				m = map[int64]traffic.Point{}
				byDist[s.Distribution] = m
			}
			for _, p := range s.Points {
				q := m[p.At]
				q.At = p.At
				q.Merge(p)
				m[p.At] = q
			}
		}
	}
	out := make([]traffic.Series, 0, len(byDist))
	for d, m := range byDist {
		pts := make([]traffic.Point, 0, len(m))
		for _, p := range m {
			pts = append(pts, p)
		}
		sort.Slice(pts, func(i, j int) bool { return pts[i].At < pts[j].At })
		out = append(out, traffic.Series{Distribution: d, Points: pts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Distribution < out[j].Distribution })
	return out
}
