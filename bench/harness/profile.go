package harness

import (
	"log"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
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

// ChildrenCPU is the CPU time (user + system) used so far by the running
// descendants of this process (the varnishd managers and their cache
// processes), read from /proc/<pid>/stat (Linux; 0 elsewhere). A child
// that exited is not counted, so take it while the edges run.
func ChildrenCPU() time.Duration {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	type proc struct {
		ppid  int
		ticks int64
	}
	procs := map[int]proc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces) in ")": state,
		// ppid, …, utime (14th field of the line), stime (15th).
		i := strings.LastIndexByte(string(data), ')')
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		procs[pid] = proc{ppid: ppid, ticks: ut + st}
	}
	self := os.Getpid()
	var ticks int64
	for _, p := range procs {
		for up, n := p.ppid, 0; up > 1 && n < 16; up, n = procs[up].ppid, n+1 {
			if up == self {
				ticks += p.ticks
				break
			}
		}
	}
	// USER_HZ is 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)).
	return time.Duration(ticks) * 10 * time.Millisecond
}
