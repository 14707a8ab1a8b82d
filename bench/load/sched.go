package main

import (
	"fmt"
	"runtime/metrics"
	"time"

	dto "github.com/prometheus/client_model/go"

	apimetrics "github.com/cdnflow/cdnflow/internal/metrics"
)

// cpuQueue tells the CPU's queue from the work itself during the load:
// the Go scheduler's histogram of how long goroutines waited runnable
// before they ran (runtime/metrics "/sched/latencies:seconds"; every
// wake-up of a request, server and client side, waits there once), and
// how many goroutines were runnable, sampled every 5 ms
// ("/sched/goroutines/runnable:goroutines"). With the clients in this
// process, a closed loop of N clients keeps about N requests in flight
// whatever the API decides (Little's law: mean latency = N / req/s), and
// these two lines show where they wait.
type cpuQueue struct {
	start *metrics.Float64Histogram
	stop  chan struct{}
	done  chan [2]uint64 // mean and max runnable
}

const (
	schedMetric    = "/sched/latencies:seconds"
	runnableMetric = "/sched/goroutines/runnable:goroutines"
)

func readSched() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: schedMetric}}
	metrics.Read(s)
	return s[0].Value.Float64Histogram()
}

func startCPUQueue() *cpuQueue {
	q := &cpuQueue{start: readSched(), stop: make(chan struct{}), done: make(chan [2]uint64, 1)}
	go q.sample()
	return q
}

// sample averages the runnable goroutines until stop.
func (q *cpuQueue) sample() {
	s := []metrics.Sample{{Name: runnableMetric}}
	var n, sum, most uint64
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			if n > 0 {
				sum /= n
			}
			q.done <- [2]uint64{sum, most}
			return
		case <-t.C:
			metrics.Read(s)
			if s[0].Value.Kind() != metrics.KindUint64 {
				continue
			}
			v := s[0].Value.Uint64()
			n, sum, most = n+1, sum+v, max(most, v)
		}
	}
}

// report stops the sampling and prints the waits' p50, p99 and p99.9
// (upper bounds of the histogram's buckets) and the runnable goroutines.
func (q *cpuQueue) report() {
	close(q.stop)
	runnable := <-q.done
	end := readSched()
	counts := make([]uint64, len(end.Counts))
	var total uint64
	for i := range end.Counts {
		counts[i] = end.Counts[i] - q.start.Counts[i]
		total += counts[i]
	}
	at := func(p float64) string {
		want := uint64(float64(total) * p)
		var seen uint64
		for i, c := range counts {
			seen += c
			if seen > want {
				return ms(time.Duration(end.Buckets[i+1] * float64(time.Second)))
			}
		}
		return "-"
	}
	fmt.Printf("  this process's CPU queue during the load: goroutines runnable (waiting for one of the CPUs) mean %d, max %d; a wait for a CPU p50 ≤ %s, p99 ≤ %s, p99.9 ≤ %s (%d sampled waits)\n",
		runnable[0], runnable[1], at(0.5), at(0.99), at(0.999), total)
}

// apiRefusals is the API's own measure of its 429 answers
// (cdnflow_api_request_seconds{code="429"}, from handler entry to the
// answer written, every route): how long deciding a refusal took,
// without the CPU queue before and after it.
type apiRefusals struct{ start map[float64]uint64 }

func readRefusalBuckets() (map[float64]uint64, uint64) {
	buckets := map[float64]uint64{}
	var count uint64
	families, err := apimetrics.Registry.Gather()
	if err != nil {
		return buckets, 0
	}
	for _, f := range families {
		if f.GetName() != "cdnflow_api_request_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabel(m, "code", "429") {
				continue
			}
			h := m.GetHistogram()
			count += h.GetSampleCount()
			for _, b := range h.GetBucket() {
				buckets[b.GetUpperBound()] += b.GetCumulativeCount()
			}
		}
	}
	buckets[-1] = count
	return buckets, count
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func startAPIRefusals() apiRefusals {
	b, _ := readRefusalBuckets()
	return apiRefusals{start: b}
}

// report prints the share of the load's 429 answers the API decided
// within 1, 5 and 10 ms of the request reaching its handler.
func (a apiRefusals) report() {
	end, _ := readRefusalBuckets()
	total := end[-1] - a.start[-1]
	if total == 0 {
		return
	}
	share := func(le float64) string {
		return fmt.Sprintf("%.2f %%", 100*float64(end[le]-a.start[le])/float64(total))
	}
	fmt.Printf("  refusals as the API measured them (handler entry to answer written, cdnflow_api_request_seconds{code=\"429\"}): %d, within 5 ms %s, within 10 ms %s, within 25 ms %s\n",
		total, share(0.005), share(0.01), share(0.025))
}
