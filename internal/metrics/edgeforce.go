package metrics

import "github.com/prometheus/client_golang/prometheus"

// EdgeForced counts distribution changes put with force over an entry no
// control plane wrote (activities.ApplySite), by edge and reason
// (ahead_of_clock, same_life_newer).
var EdgeForced = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "cdnflow_edge_forced_puts_total", Help: "Distribution changes put with force over a planted site table entry, by edge and reason (ahead_of_clock, same_life_newer).",
}, []string{"edge", "reason"})

func init() { Registry.MustRegister(EdgeForced) }
