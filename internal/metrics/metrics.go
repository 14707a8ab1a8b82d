// Package metrics exposes cdnflow's Prometheus series: its own (jobs, pairs
// and purges per edge, edge and API latency) and the Temporal SDK's, all on
// one registry served at /metrics.
package metrics

import (
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdkclient "go.temporal.io/sdk/client"
)

// Registry is the process's metrics.
var Registry = prometheus.NewRegistry()

var (
	// JobsStarted counts jobs accepted by the API, by type.
	JobsStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdnflow_jobs_started_total", Help: "Jobs accepted by the API, by type (prewarm, purge, distribution).",
	}, []string{"type"})
	// PrewarmPairs counts URL×edge outcomes, by edge and result.
	PrewarmPairs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdnflow_prewarm_pairs_total", Help: "Prewarm URL x edge pairs with an outcome, by edge and result (success, failed).",
	}, []string{"edge", "result"})
	// PurgeUnits counts purge requests sent to edges, by edge and result.
	PurgeUnits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdnflow_purge_requests_total", Help: "PURGE/BAN requests sent to edges, by edge, type and result (done, failed).",
	}, []string{"edge", "type", "result"})
	// EdgeLatency is the time of one request to an edge.
	EdgeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cdnflow_edge_request_seconds", Help: "Latency of requests to edges, by edge and operation (fetch, purge).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"edge", "op"})
	// EdgeDrift counts differences found between an edge's running
	// configuration and the desired one, by edge and reason (vcl,
	// missing, stale, ahead, differs, adopted, orphan, drain, restart;
	// activities.EdgeSyncReport.Drift); each was healed or is retried.
	EdgeDrift = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdnflow_edge_drift_total", Help: "Edge configuration drift found by the sync loop, by edge and reason (vcl, missing, stale, ahead, differs, adopted, orphan, drain, restart).",
	}, []string{"edge", "reason"})
	// EdgeSyncHeld counts what the edge sync left undone on purpose, by
	// edge and reason: "empty-desired" (deletions skipped: the desired
	// state was empty), "delete-cap" (deletions over the round's share,
	// done in later rounds), "conflict" (a desired site another control
	// plane's entry holds), "in-flight" (an entry differing under a newer
	// generation, replaced if still so next round); one per entry.
	EdgeSyncHeld = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdnflow_edge_sync_held_total", Help: "Site table changes the edge sync left undone on purpose, by edge and reason (empty-desired, delete-cap, conflict, in-flight).",
	}, []string{"edge", "reason"})
	// EdgeForeignSites is the number of entries of other control planes
	// in an edge's site table at the latest sync round (left alone).
	EdgeForeignSites = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cdnflow_edge_foreign_sites", Help: "Site table entries owned by other control planes at the latest sync round, by edge.",
	}, []string{"edge"})
	// APILatency is the time the API took per route and status class.
	APILatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cdnflow_api_request_seconds", Help: "API request latency by method, route and status code.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method", "route", "code"})
	// APIErrors counts API answers that are errors (4xx, 5xx, NHN isSuccessful=false).
	APIErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cdnflow_api_errors_total", Help: "API error answers by route and code (HTTP status, or NHN resultCode).",
	}, []string{"route", "code"})
)

func init() {
	Registry.MustRegister(JobsStarted, PrewarmPairs, PurgeUnits, EdgeLatency, EdgeDrift, EdgeSyncHeld, EdgeForeignSites, APILatency, APIErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// Handler serves the registry in the Prometheus text format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry})
}

// SDKHandler reports the Temporal SDK's metrics (temporal_* series) into
// Registry. Series are created on first use, keyed by name and tag names.
func SDKHandler() sdkclient.MetricsHandler { return &sdkHandler{reg: sdkRegistry} }

var sdkRegistry = &sdkMetrics{vecs: map[string]prometheus.Collector{}}

type sdkMetrics struct {
	mu   sync.Mutex
	vecs map[string]prometheus.Collector // by series name and label names
	// resolved holds each metric the SDK asked for, by kind, name and tag
	// values: the SDK asks again on every call (every RPC and task), and a
	// series' labels are resolved once, not sorted and hashed each time.
	// Bounded like the series themselves (the SDK's tag values: workflow
	// and activity types, task queues, operations).
	resolved sync.Map
}

type sdkHandler struct {
	reg  *sdkMetrics
	tags map[string]string
	// prep computes names, values and sig from tags once.
	prep   sync.Once
	names  []string
	values prometheus.Labels
	sig    string // the sorted name=value pairs
}

func (h *sdkHandler) WithTags(tags map[string]string) sdkclient.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[k] = v
	}
	return &sdkHandler{reg: h.reg, tags: merged}
}

func (h *sdkHandler) labels() ([]string, prometheus.Labels, string) {
	h.prep.Do(func() {
		h.names = make([]string, 0, len(h.tags))
		h.values = prometheus.Labels{}
		for k, v := range h.tags {
			h.names = append(h.names, sanitize(k))
			h.values[sanitize(k)] = v
		}
		sort.Strings(h.names)
		var sig strings.Builder
		for _, n := range h.names {
			sig.WriteString(n + "=" + h.values[n] + "\x00")
		}
		h.sig = sig.String()
	})
	return h.names, h.values, h.sig
}

// sdkSeries returns the vector of a series with these label names,
// registering the one newVec makes on first use. It reports false when the
// name is already taken with other labels or another kind: the SDK's
// metric is dropped rather than the process panicking.
func sdkSeries[V prometheus.Collector](reg *sdkMetrics, name string, labels []string, newVec func() V) (V, bool) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	k := name + "|" + strings.Join(labels, ",")
	if c, ok := reg.vecs[k]; ok {
		v, same := c.(V)
		return v, same
	}
	vec := newVec()
	if err := Registry.Register(vec); err != nil {
		return vec, false
	}
	reg.vecs[k] = vec
	return vec, true
}

// resolve answers the metric of kind and name for h's tags, made by mk the
// first time.
func resolve[M any](h *sdkHandler, kind, name string, mk func(names []string, values prometheus.Labels) M) M {
	names, values, sig := h.labels()
	key := kind + "\x00" + name + "\x00" + sig
	if m, ok := h.reg.resolved.Load(key); ok {
		return m.(M)
	}
	m := mk(names, values)
	h.reg.resolved.Store(key, m)
	return m
}

// sdkMetric answers h's metric of kind for the SDK's name: the vector
// newVec makes for the series named series(name) (registered once, by
// sdkSeries) bound by bind to h's tag values, or noop when that series
// name is taken with other labels or another kind. Counter, Gauge and
// Timer differ only in these three functions.
func sdkMetric[V prometheus.Collector, M any](h *sdkHandler, kind, name string, series func(string) string,
	newVec func(series string, labels []string) V, bind func(V, prometheus.Labels) M) M {
	return resolve(h, kind, name, func(names []string, values prometheus.Labels) M {
		s := series(name)
		vec, ok := sdkSeries(h.reg, s, names, func() V { return newVec(s, names) })
		if !ok {
			return any(noop{}).(M) // noop implements every kind (asserted beside it)
		}
		return bind(vec, values)
	})
}

func (h *sdkHandler) Counter(name string) sdkclient.MetricsCounter {
	return sdkMetric(h, "counter", name, seriesName, func(s string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: s, Help: "Temporal SDK counter " + s}, labels)
	}, func(vec *prometheus.CounterVec, values prometheus.Labels) sdkclient.MetricsCounter {
		return counter{vec.With(values)}
	})
}

func (h *sdkHandler) Gauge(name string) sdkclient.MetricsGauge {
	return sdkMetric(h, "gauge", name, seriesName, func(s string, labels []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: s, Help: "Temporal SDK gauge " + s}, labels)
	}, func(vec *prometheus.GaugeVec, values prometheus.Labels) sdkclient.MetricsGauge {
		return gauge{vec.With(values)}
	})
}

func (h *sdkHandler) Timer(name string) sdkclient.MetricsTimer {
	return sdkMetric(h, "timer", name, timerSeriesName, func(s string, labels []string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: s, Help: "Temporal SDK timer " + s,
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, labels)
	}, func(vec *prometheus.HistogramVec, values prometheus.Labels) sdkclient.MetricsTimer {
		return timer{vec.With(values)}
	})
}

// timerSeriesName is the histogram series of an SDK timer, in seconds.
func timerSeriesName(name string) string { return "temporal_" + sanitize(name) + "_seconds" }

type counter struct{ c prometheus.Counter }

func (c counter) Inc(n int64) { c.c.Add(float64(n)) }

type gauge struct{ g prometheus.Gauge }

func (g gauge) Update(v float64) { g.g.Set(v) }

type timer struct{ o prometheus.Observer }

func (t timer) Record(d time.Duration) { t.o.Observe(d.Seconds()) }

type noop struct{}

// noop stands in for every kind sdkMetric answers.
var _ interface {
	sdkclient.MetricsCounter
	sdkclient.MetricsGauge
	sdkclient.MetricsTimer
} = noop{}

func (noop) Inc(int64)            {}
func (noop) Update(float64)       {}
func (noop) Record(time.Duration) {}

// seriesName keeps cdnflow's own series (reported from workflows through
// workflow.GetMetricsHandler, which is replay-safe) apart from the SDK's.
func seriesName(name string) string {
	if strings.HasPrefix(name, "cdnflow_") {
		return sanitize(name)
	}
	return "temporal_" + sanitize(name)
}

func sanitize(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !validNameRune(r) }) < 0 {
		return s // most names are valid already: no copy
	}
	var b strings.Builder
	for _, r := range s {
		if validNameRune(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// validNameRune reports a rune Prometheus allows in names as they are.
func validNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_'
}
