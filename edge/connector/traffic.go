package connector

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/cdnflow/cdnflow/edge/traffic"
)

// TrafficPath serves the edge's live traffic (edge/traffic) on the admin
// protocol (HeaderAdmin and the control token, like AdminPath):
//
//	GET TrafficPath?distribution=D&step=1s|1m&since=UNIX → traffic.Report (JSON);
//	    step 1m needs D (at most traffic.Minutes points), 1s without D is at
//	    most traffic.MaxReportPoints (edge.Client.Traffic's read cap)
//	GET TrafficPath + "/metrics" → Prometheus text: cdnflow_edge_requests_total,
//	    cdnflow_edge_responses_total, cdnflow_edge_response_bytes_total,
//	    cdnflow_edge_origin_seconds, labels distribution, edge, class
//
// 404 when the connector reads no request log (TrafficOptions.WorkDir
// unset).
const TrafficPath = "/.cdnflow/traffic"

// TrafficOptions turn on the edge's live traffic: a traffic.Reader of
// the edge's request log, its hosts resolved through the site table.
type TrafficOptions struct {
	// WorkDir is the edge's varnishd -n directory (--traffic-varnish-dir);
	// "" leaves live traffic off.
	WorkDir string
	// Edge is the edge's inventory id, the "edge" label (--traffic-edge-id).
	Edge string
	// MaxDistributions bounds the distributions tracked; 0:
	// traffic.DefaultMaxDistributions.
	MaxDistributions int
}

// startTraffic runs the request log reader of o.Traffic until ctx ends
// (nothing when o.Traffic.WorkDir is unset).
func (c *Connector) startTraffic(ctx context.Context) {
	o := c.opts.Traffic
	if o.WorkDir == "" {
		return
	}
	agg := c.EnableTraffic(o.Edge, o.MaxDistributions)
	r := &traffic.Reader{WorkDir: o.WorkDir, Agg: agg, Logger: c.log.Named("traffic")}
	go func() {
		if err := r.Run(ctx); err != nil {
			c.log.Error("live traffic off", zap.Error(err))
		}
	}()
}

// EnableTraffic makes the connector serve the traffic of an Aggregator
// for edge whose hosts are resolved through the site table, and returns
// it for a reader to feed (startTraffic's, or a test's).
func (c *Connector) EnableTraffic(edge string, maxDistributions int) *traffic.Aggregator {
	agg := traffic.NewAggregator(edge, func(host string) (string, bool) {
		s, ok := c.table.Lookup(hostOf(host))
		return s.Name, ok
	}, maxDistributions)
	c.traffic.Store(agg)
	return agg
}

// serveTraffic answers TrafficPath requests (already admitted as admin
// requests) and reports whether r was one.
func (c *Connector) serveTraffic(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != TrafficPath && r.URL.Path != TrafficPath+"/metrics" {
		return false
	}
	agg := c.traffic.Load()
	switch {
	case agg == nil:
		writeStatus(w, http.StatusNotFound, "no live traffic on this edge (the connector reads no request log)")
	case r.Method != http.MethodGet:
		writeStatus(w, http.StatusMethodNotAllowed, "GET only")
	case r.URL.Path == TrafficPath+"/metrics":
		promhttp.HandlerFor(agg.Registry(), promhttp.HandlerOpts{}).ServeHTTP(w, r)
	default:
		q, err := trafficQuery(r)
		if err != nil {
			writeStatus(w, http.StatusBadRequest, err.Error())
			return true
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(agg.Answer(q))
	}
	return true
}

func trafficQuery(r *http.Request) (traffic.Query, error) {
	v := r.URL.Query()
	q := traffic.Query{Distribution: v.Get("distribution"), Step: time.Second}
	switch v.Get("step") {
	case "", "1s":
	case "1m":
		// A day of one distribution (Minutes points), never of all.
		if q.Distribution == "" {
			return q, errMinuteNeedsDistribution
		}
		q.Step = time.Minute
	default:
		return q, errBadStep
	}
	if s := v.Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return q, errBadSince
		}
		// A future since reads the current bucket only (the
		// Aggregator clamps it too).
		q.Since = time.Unix(min(n, time.Now().Unix()), 0)
	}
	return q, nil
}

type trafficError string

func (e trafficError) Error() string { return string(e) }

const (
	errBadStep  = trafficError("step is 1s or 1m")
	errBadSince = trafficError("since is a Unix time in seconds")

	errMinuteNeedsDistribution = trafficError("step 1m reads one distribution: name it")
)
