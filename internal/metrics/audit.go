package metrics

import "github.com/prometheus/client_golang/prometheus"

// AuditRecords counts audit records by outcome: written, dropped_full (the
// queue was full), failed (the store refused the write), dropped_closed
// (sent after the API shut down), sampled_out (a request without a valid
// credential past the per-process allowance).
var AuditRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "cdnflow_audit_records_total", Help: "Audit records of mutating API requests, by outcome (written, failed, dropped_full, dropped_closed, sampled_out).",
}, []string{"outcome"})

func init() { Registry.MustRegister(AuditRecords) }
