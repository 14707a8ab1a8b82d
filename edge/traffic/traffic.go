// Package traffic is an edge's live traffic, read from the edge's own
// request log (Varnish's shared-memory log through varnishncsa, Reader)
// and kept per distribution in bounded rings (Aggregator): one point a
// second for the last Seconds seconds and one a minute for the last
// Minutes minutes. The origin connector beside each edge runs one
// (edge/connector/traffic.go) and serves it to the control plane and to
// Prometheus.
//
// Bounds: a request's Host is looked up in the edge's site table; hosts
// of no site fold into OtherDistribution, and past MaxDistributions
// tracked distributions new ones fold there too. Metric labels are
// (distribution, edge, class) with classes from fixed sets, so no client
// can grow them.
package traffic

import (
	"time"
)

// Ring sizes: 1 s points for the last 5 minutes, 1 min points for the
// last day.
const (
	Seconds = 300
	Minutes = 1440
)

// MaxReportPoints is the most points one Report holds: every
// distribution (DefaultMaxDistributions and OtherDistribution) over the
// second ring; a minute Report is of one distribution (Minutes points).
const MaxReportPoints = (DefaultMaxDistributions + 1) * Seconds

// MaxReportBytes bounds the JSON of one Report as read by the control
// plane: MaxReportPoints of at most 512 bytes each (14 counters of up to
// 20 digits and their names), and room for the series' names.
const MaxReportBytes = MaxReportPoints*512 + 1<<20

// OtherDistribution is the label of requests whose Host belongs to no
// site of the edge's table (or past MaxDistributions).
const OtherDistribution = "other"

// DefaultMaxDistributions bounds the distributions an Aggregator tracks
// (each costs about 200 KB of rings and a few metric series).
const DefaultMaxDistributions = 256

// Hit classes of a request (Varnish's handling, with grace hits apart).
const (
	ClassHit   = "hit"
	ClassMiss  = "miss"
	ClassPass  = "pass"
	ClassStale = "stale" // a hit on an object past its TTL, in grace
	ClassSynth = "synth" // answered by the VCL itself (synth, pipe)
)

// Sample is one client request as the edge's log tells it.
type Sample struct {
	Host   string
	Class  string
	Status int
	// Bytes is the body size sent to the client.
	Bytes int64
	// Origin is the time to first byte of a miss or pass (the origin
	// fetch through the connector); 0 for the other classes.
	Origin time.Duration
}

// Point is the traffic of one distribution on one edge in one bucket
// (1 s or 1 min, starting at At, Unix seconds).
type Point struct {
	At       int64  `json:"t"`
	Requests uint64 `json:"requests"`
	Hit      uint64 `json:"hit"`
	Miss     uint64 `json:"miss"`
	Pass     uint64 `json:"pass"`
	Stale    uint64 `json:"stale"`
	Synth    uint64 `json:"synth"`
	Bytes    uint64 `json:"bytes"`
	S2xx     uint64 `json:"status2xx"`
	S3xx     uint64 `json:"status3xx"`
	S4xx     uint64 `json:"status4xx"`
	S5xx     uint64 `json:"status5xx"`
	// OriginFetches and OriginMillis (their summed time to first byte)
	// give the mean origin latency.
	OriginFetches uint64 `json:"originFetches"`
	OriginMillis  uint64 `json:"originMillis"`
}

func (p *Point) add(s Sample) {
	p.Requests++
	switch s.Class {
	case ClassHit:
		p.Hit++
	case ClassMiss:
		p.Miss++
	case ClassPass:
		p.Pass++
	case ClassStale:
		p.Stale++
	default:
		p.Synth++
	}
	if s.Bytes > 0 {
		p.Bytes += uint64(s.Bytes)
	}
	switch s.Status / 100 {
	case 2:
		p.S2xx++
	case 3:
		p.S3xx++
	case 4:
		p.S4xx++
	case 5:
		p.S5xx++
	}
	if s.Class == ClassMiss || s.Class == ClassPass {
		p.OriginFetches++
		p.OriginMillis += uint64(s.Origin.Milliseconds())
	}
}

// merge adds q's counts into p.
func (p *Point) merge(q Point) {
	p.Requests += q.Requests
	p.Hit += q.Hit
	p.Miss += q.Miss
	p.Pass += q.Pass
	p.Stale += q.Stale
	p.Synth += q.Synth
	p.Bytes += q.Bytes
	p.S2xx += q.S2xx
	p.S3xx += q.S3xx
	p.S4xx += q.S4xx
	p.S5xx += q.S5xx
	p.OriginFetches += q.OriginFetches
	p.OriginMillis += q.OriginMillis
}

// Merge adds the counts of q into p (points of several edges, same At).
func (p *Point) Merge(q Point) { p.merge(q) }

// HitRatio is (hit + stale) / (hit + stale + miss + pass), or -1 when no
// cacheable request was seen.
func (p Point) HitRatio() float64 {
	n := p.Hit + p.Stale + p.Miss + p.Pass
	if n == 0 {
		return -1
	}
	return float64(p.Hit+p.Stale) / float64(n)
}

// rings are one distribution's points; a slot whose At is not the
// bucket asked for is empty.
type rings struct {
	sec  [Seconds]Point
	min  [Minutes]Point
	last int64 // Unix second of the latest request
}

func (r *rings) add(now int64, s Sample) {
	p := &r.sec[now%Seconds]
	if p.At != now {
		*p = Point{At: now}
	}
	p.add(s)
	m := now - now%60
	q := &r.min[(m/60)%Minutes]
	if q.At != m {
		*q = Point{At: m}
	}
	q.add(s)
	r.last = now
}

// points answers the buckets of step seconds (1 or 60) from since to
// until (Unix seconds, inclusive), empty buckets as zero points; any
// since is safe: one before the ring is read from the ring's start, one
// after until answers no points.
func (r *rings) points(step, since, until int64) []Point {
	keep := int64(Seconds)
	if step != 1 {
		keep = Minutes * 60
	}
	since = max(since, until-keep+step)
	since -= since % step
	until -= until % step
	if since > until {
		return []Point{}
	}
	out := make([]Point, 0, (until-since)/step+1)
	for t := since; t <= until; t += step {
		var p Point
		if step == 1 {
			p = r.sec[t%Seconds]
		} else {
			p = r.min[(t/60)%Minutes]
		}
		if p.At != t {
			p = Point{At: t}
		}
		out = append(out, p)
	}
	return out
}
