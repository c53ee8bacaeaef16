//go:build !unix

package bench

import (
	"os"
	"time"
)

func terminate(p *os.Process) error { return p.Kill() }

func exitMaxRSS(*os.ProcessState) int64 { return 0 }

func selfCPU() time.Duration { return 0 }
