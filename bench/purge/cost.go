package main

import (
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/cdnflow/cdnflow/bench/harness"
)

// memProfilePath is -memprofile: where to write the allocations of the
// timed single-URL purges (FILE.base holds the profile at their start).
var memProfilePath string

// processCost is the process's CPU time and heap allocations at a start
// point: figures that do not depend on how loaded the box is.
type processCost struct {
	cpu            time.Duration
	mallocs, bytes uint64
}

// startCost reads the process's cost so far (and writes the base of
// -memprofile).
func startCost() processCost {
	writeAllocs(memProfilePath + ".base")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return processCost{cpu: harness.ProcessCPU(), mallocs: ms.Mallocs, bytes: ms.TotalAlloc}
}

// per is the cost since c divided over n operations: CPU·s (rusage, user
// + system), heap allocations and bytes per operation.
func (c processCost) per(n int) string {
	cpu := harness.ProcessCPU() - c.cpu
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	writeAllocs(memProfilePath)
	k := float64(n)
	return fmt.Sprintf("%.3f CPU·s, %.0f allocations, %.1f MiB allocated per purge (%d purges, %.2f CPU·s)",
		cpu.Seconds()/k, float64(ms.Mallocs-c.mallocs)/k, float64(ms.TotalAlloc-c.bytes)/k/(1<<20), n, cpu.Seconds())
}

// writeAllocs writes the allocation profile so far to path (nothing
// without -memprofile).
func writeAllocs(path string) {
	if memProfilePath == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
