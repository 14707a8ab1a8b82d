package metrics

import (
	"testing"
	"time"
)

// sdkValue reads series name{labels} from Registry: a counter's or a
// gauge's value or a histogram's sample count.
func sdkValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metric
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// The SDK asks its handler for a metric on every call, through handlers
// it makes anew with WithTags: handlers with the same tags reach one
// series, each tag value its own, whichever handler asked first.
func TestSDKHandlerSeriesByTagValues(t *testing.T) {
	root := SDKHandler().WithTags(map[string]string{"namespace": "default"})
	a1 := root.WithTags(map[string]string{"operation": "StartWorkflowExecution"})
	a2 := root.WithTags(map[string]string{"operation": "StartWorkflowExecution"})
	b := root.WithTags(map[string]string{"operation": "DescribeWorkflowExecution"})
	for range 3 {
		a1.Counter("test_sdk_requests").Inc(1)
	}
	a2.Counter("test_sdk_requests").Inc(2)
	b.Counter("test_sdk_requests").Inc(10)
	b.Timer("test_sdk_latency").Record(time.Millisecond)
	a1.Timer("test_sdk_latency").Record(time.Millisecond)
	a2.Timer("test_sdk_latency").Record(time.Millisecond)
	a1.Gauge("test_sdk_slots").Update(4)
	a2.Gauge("test_sdk_slots").Update(7)
	b.Gauge("test_sdk_slots").Update(1)
	start := map[string]string{"namespace": "default", "operation": "StartWorkflowExecution"}
	describe := map[string]string{"namespace": "default", "operation": "DescribeWorkflowExecution"}
	if got := sdkValue(t, "temporal_test_sdk_requests", start); got != 5 {
		t.Errorf("StartWorkflowExecution requests = %v, want 5 (two handlers, one series)", got)
	}
	if got := sdkValue(t, "temporal_test_sdk_requests", describe); got != 10 {
		t.Errorf("DescribeWorkflowExecution requests = %v, want 10", got)
	}
	if got := sdkValue(t, "temporal_test_sdk_latency_seconds", start); got != 2 {
		t.Errorf("StartWorkflowExecution latency samples = %v, want 2", got)
	}
	if got := sdkValue(t, "temporal_test_sdk_latency_seconds", describe); got != 1 {
		t.Errorf("DescribeWorkflowExecution latency samples = %v, want 1", got)
	}
	if got := sdkValue(t, "temporal_test_sdk_slots", start); got != 7 {
		t.Errorf("StartWorkflowExecution slots = %v, want 7 (the last update of either handler)", got)
	}
	if got := sdkValue(t, "temporal_test_sdk_slots", describe); got != 1 {
		t.Errorf("DescribeWorkflowExecution slots = %v, want 1", got)
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{"task_queue": "task_queue", "workflow.type": "workflow_type", "naïve-x": "na_ve_x"} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
