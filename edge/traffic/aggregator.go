package traffic

import (
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Lookup answers the distribution (site name) serving host, a lower-case
// name without port; ok is false for a host of no site.
type Lookup func(host string) (distribution string, ok bool)

// Aggregator keeps one edge's traffic per distribution. Safe for
// concurrent use.
type Aggregator struct {
	edge   string
	lookup Lookup
	max    int
	now    func() time.Time

	mu     sync.Mutex
	series map[string]*tracked

	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	statuses *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	origin   *prometheus.HistogramVec
}

// NewAggregator keeps the traffic of edge (its inventory id, the "edge"
// label) with hosts resolved by lookup; max ≤ 0 means
// DefaultMaxDistributions.
func NewAggregator(edge string, lookup Lookup, max int) *Aggregator {
	if max <= 0 {
		max = DefaultMaxDistributions
	}
	a := &Aggregator{edge: edge, lookup: lookup, max: max, now: time.Now, series: map[string]*tracked{}, reg: prometheus.NewRegistry()}
	labels := []string{"distribution", "edge", "class"}
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdnflow_edge_requests_total", Help: "Client requests on the edge, by distribution, edge and hit class (hit, miss, pass, stale, synth), from the edge's request log.",
	}, labels)
	a.statuses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdnflow_edge_responses_total", Help: "Client responses of the edge, by distribution, edge and status class (1xx to 5xx), from the edge's request log.",
	}, labels)
	a.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdnflow_edge_response_bytes_total", Help: "Body bytes sent to clients, by distribution and edge.",
	}, []string{"distribution", "edge"})
	a.origin = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cdnflow_edge_origin_seconds", Help: "Time to first byte of misses and passes (the origin fetch), by distribution and edge.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"distribution", "edge"})
	a.reg.MustRegister(a.requests, a.statuses, a.bytes, a.origin)
	return a
}

// Edge is the edge id the Aggregator labels its traffic with.
func (a *Aggregator) Edge() string { return a.edge }

// Registry holds the Aggregator's Prometheus series.
func (a *Aggregator) Registry() *prometheus.Registry { return a.reg }

// Add counts one request, now.
func (a *Aggregator) Add(s Sample) {
	d := a.trackedFor(s.Host)
	now := a.now().Unix()
	d.mu.Lock()
	d.r.add(now, s)
	d.mu.Unlock()
	d.counters.add(s)
}

// tracked is one distribution's rings and its metric series (looked up
// once, not per request).
type tracked struct {
	name string
	mu   sync.Mutex
	r    rings
	counters
}

// counters are one distribution's metric series.
type counters struct {
	classes  map[string]prometheus.Counter // by hit class
	statuses [7]prometheus.Counter         // by status class: other, 1xx … 5xx
	bytes    prometheus.Counter
	origin   prometheus.Observer
}

func (a *Aggregator) newTracked(name string) *tracked {
	d := &tracked{name: name}
	d.classes = map[string]prometheus.Counter{}
	for _, c := range []string{ClassHit, ClassMiss, ClassPass, ClassStale, ClassSynth} {
		d.classes[c] = a.requests.WithLabelValues(name, a.edge, c)
	}
	for i := range d.statuses {
		d.statuses[i] = a.statuses.WithLabelValues(name, a.edge, statusClass(i*100))
	}
	d.bytes = a.bytes.WithLabelValues(name, a.edge)
	d.origin = a.origin.WithLabelValues(name, a.edge)
	return d
}

func (c *counters) add(s Sample) {
	if k, ok := c.classes[s.Class]; ok {
		k.Inc()
	} else {
		c.classes[ClassSynth].Inc()
	}
	i := s.Status / 100
	if i < 1 || i > 5 {
		i = 0
	}
	c.statuses[i].Inc()
	if s.Bytes > 0 {
		c.bytes.Add(float64(s.Bytes))
	}
	if s.Class == ClassMiss || s.Class == ClassPass {
		c.origin.Observe(s.Origin.Seconds())
	}
}

// trackedFor is the distribution of host, created on first use; unknown
// hosts and distributions past the bound are OtherDistribution.
func (a *Aggregator) trackedFor(host string) *tracked {
	name, ok := a.lookup(host)
	if !ok || name == "" {
		name = OtherDistribution
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if d, ok := a.series[name]; ok {
		return d
	}
	if name != OtherDistribution && a.tracking() >= a.max {
		name = OtherDistribution
		if d, ok := a.series[name]; ok {
			return d
		}
	}
	d := a.newTracked(name)
	a.series[name] = d
	return d
}

// tracking counts the distributions tracked besides OtherDistribution.
func (a *Aggregator) tracking() int {
	n := len(a.series)
	if _, ok := a.series[OtherDistribution]; ok {
		n--
	}
	return n
}

// Forget drops the distributions without a request for longer than the
// minute ring (a day) and their metric series, so distributions that
// come and go do not accumulate.
func (a *Aggregator) Forget() {
	cutoff := a.now().Unix() - Minutes*60
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, d := range a.series {
		d.mu.Lock()
		idle := d.r.last < cutoff
		d.mu.Unlock()
		if !idle {
			continue
		}
		delete(a.series, name)
		match := prometheus.Labels{"distribution": name, "edge": a.edge}
		a.requests.DeletePartialMatch(match)
		a.statuses.DeletePartialMatch(match)
		a.bytes.DeletePartialMatch(match)
		a.origin.DeletePartialMatch(match)
	}
}

// Series is one distribution's points on one edge.
type Series struct {
	Distribution string  `json:"distribution"`
	Edge         string  `json:"edge"`
	Points       []Point `json:"points"`
}

// Query picks series: Distribution "" is every tracked one; Step is 1 s
// or 1 min; Since is the first bucket (clamped to the ring, and to now:
// a future Since reads the current bucket only).
type Query struct {
	Distribution string
	Step         time.Duration
	Since        time.Time
}

// Read answers q up to now (the current, still filling bucket last),
// series in distribution order.
func (a *Aggregator) Read(q Query) []Series {
	step, keep := int64(1), int64(Seconds)
	if q.Step >= time.Minute {
		step, keep = 60, Minutes*60
	}
	now := a.now().Unix()
	since := q.Since.Unix()
	if q.Since.IsZero() || since < now-keep+step {
		since = now - keep + step
	}
	since = min(since, now) // a future since: the current bucket only
	a.mu.Lock()
	names := make([]string, 0, len(a.series))
	for name := range a.series {
		if q.Distribution == "" || q.Distribution == name {
			names = append(names, name)
		}
	}
	a.mu.Unlock()
	sort.Strings(names)
	out := make([]Series, 0, len(names))
	for _, name := range names {
		a.mu.Lock()
		d := a.series[name]
		a.mu.Unlock()
		if d == nil {
			continue
		}
		out = append(out, Series{Distribution: name, Edge: a.edge, Points: d.points(step, since, now)})
	}
	return out
}

// points reads d's rings under its lock (released even if the read
// panics, so the reader's Add never blocks on it).
func (d *tracked) points(step, since, until int64) []Point {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.r.points(step, since, until)
}

func statusClass(code int) string {
	c := code / 100
	if c < 1 || c > 5 {
		return "other"
	}
	return strconv.Itoa(c) + "xx"
}

// Report is what an edge answers for its live traffic (the connector's
// TrafficPath): its id, its clock (Unix seconds) and the series asked
// for, Step "1s" or "1m".
type Report struct {
	Edge   string   `json:"edge"`
	Now    int64    `json:"now"`
	Step   string   `json:"step"`
	Series []Series `json:"series"`
}

// Answer reads q into a Report.
func (a *Aggregator) Answer(q Query) Report {
	step := "1s"
	if q.Step >= time.Minute {
		step = "1m"
	}
	return Report{Edge: a.edge, Now: a.now().Unix(), Step: step, Series: a.Read(q)}
}
