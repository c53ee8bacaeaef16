//go:build unix

package bench

import (
	"os"
	"runtime"
	"syscall"
	"time"
)

// terminate asks p to shut down as the worker command expects (SIGTERM).
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// exitMaxRSS is the peak RSS of an exited process in bytes, from its
// rusage.
func exitMaxRSS(ps *os.ProcessState) int64 {
	if ps == nil {
		return 0
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return ru.Maxrss // bytes
	}
	return ru.Maxrss << 10 // kilobytes
}

// selfCPU is this process's user plus system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
