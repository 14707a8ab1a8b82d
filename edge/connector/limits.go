package connector

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdnflow/cdnflow/internal/metrics"
)

// Limits of an origin answer the edge can store or pass, below the
// varnishd parameters every cdnflow edge runs with (varnishd.EdgeParams):
// an answer beyond one is refused here with its cause (a 502 with
// HeaderError, the unstorable metric, TableState.Unstorable) instead of
// Varnish's 503 that says nothing.
const (
	// MaxOriginHeaderBytes bounds the origin's header section (every
	// "Name: value\r\n" line): 48 KiB, under http_resp_size (64k) with
	// room for the status line and the connector's own headers.
	MaxOriginHeaderBytes = 48 << 10
	// MaxOriginHeaderLine bounds one header line: 24 KiB, under
	// http_resp_hdr_len (32k).
	MaxOriginHeaderLine = 24 << 10
	// MaxSurrogateKeyBytes bounds the xkey header the edge's VCL derives
	// from Surrogate-Key (each key prefixed with the client host and "#"):
	// 192 KiB, so it fits workspace_backend (512k) beside the headers and
	// the Surrogate-Key copies VCL makes.
	MaxSurrogateKeyBytes = 192 << 10
)

// Causes of an unstorable answer (the cause label, Unstorable.Cause).
const (
	CauseHeadersTooLarge  = "resp_headers_too_large"
	CauseHeaderLineTooBig = "resp_header_line_too_long"
	CauseSurrogateKeys    = "surrogate_keys_too_large"
)

// Unstorable counts the origin answers of one site (Site.Name; DefaultSite
// for hosts served by the edge's default origin) refused for one cause
// since the connector started.
type Unstorable struct {
	Site  string `json:"site"`
	Cause string `json:"cause"`
	Count uint64 `json:"count"`
}

// Sites named by the unstorable counters besides the table's.
const (
	// DefaultSite is the edge's default origin (no site table entry).
	DefaultSite = "(default)"
	// OtherSites holds the counts of sites beyond maxUnstorable.
	OtherSites = "(other)"
)

// maxUnstorable bounds the (site, cause) pairs counted, and so the label
// values of unstorableTotal: sites are a bounded table, causes three.
const maxUnstorable = 1024

var unstorableTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "cdnflow_edge_unstorable_total",
	Help: "Origin answers an edge could not store or pass, refused by its connector (502 with the cause), by distribution and cause.",
}, []string{"distribution", "cause"})

func init() { metrics.Registry.MustRegister(unstorableTotal) }

// unstorableCounts are a connector's Unstorable counters.
type unstorableCounts struct {
	mu sync.Mutex
	m  map[[2]string]uint64
}

func (u *unstorableCounts) add(site, cause string) {
	u.mu.Lock()
	if u.m == nil {
		u.m = map[[2]string]uint64{}
	}
	k := [2]string{site, cause}
	if _, ok := u.m[k]; !ok && len(u.m) >= maxUnstorable {
		k[0] = OtherSites
	}
	u.m[k]++
	u.mu.Unlock()
	unstorableTotal.WithLabelValues(k[0], cause).Inc()
}

// rows are the counters, in site and cause order.
func (u *unstorableCounts) rows() []Unstorable {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]Unstorable, 0, len(u.m))
	for k, n := range u.m {
		out = append(out, Unstorable{Site: k[0], Cause: k[1], Count: n})
	}
	slices.SortFunc(out, func(a, b Unstorable) int {
		return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(a.Cause, b.Cause))
	})
	return out
}

// checkAnswer measures the origin's answer against the edge's limits and
// returns the cause and a one-line reason of the first it exceeds, or ""
// when the edge can take it. host is the client host the VCL prefixes to
// every surrogate key.
func checkAnswer(h http.Header, host string) (cause, reason string) {
	total, longest, longestName := 0, 0, ""
	for k, vs := range h {
		for _, v := range vs {
			n := len(k) + len(": ") + len(v) + len("\r\n")
			total += n
			if n > longest {
				longest, longestName = n, k
			}
		}
	}
	if longest > MaxOriginHeaderLine {
		return CauseHeaderLineTooBig, fmt.Sprintf("origin header %s is %d bytes; the edge takes at most %d in one header line", longestName, longest, MaxOriginHeaderLine)
	}
	if total > MaxOriginHeaderBytes {
		return CauseHeadersTooLarge, fmt.Sprintf("origin response headers are %d bytes; the edge takes at most %d", total, MaxOriginHeaderBytes)
	}
	xkey := 0
	for _, v := range h.Values("Surrogate-Key") {
		for _, key := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
			xkey += len(host) + len("#") + len(key) + len(" ")
		}
	}
	if xkey > MaxSurrogateKeyBytes {
		return CauseSurrogateKeys, fmt.Sprintf("Surrogate-Key makes a %d-byte xkey header (each key prefixed with %q); the edge takes at most %d", xkey, host+"#", MaxSurrogateKeyBytes)
	}
	return "", ""
}
