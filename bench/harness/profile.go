package harness

import (
	"log"
	"os"
	"runtime/pprof"
	"syscall"
	"time"
)

// StartCPUProfile starts a CPU profile of this process (with the harness:
// worker, API and embedded Temporal) into path, read with `go tool
// pprof`; "" profiles nothing. It returns what stops the profile and
// closes the file. A file that cannot be written is fatal.
func StartCPUProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			log.Print(err)
		}
	}
}

// ProcessCPU is the CPU time (user + system) this process has used.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
