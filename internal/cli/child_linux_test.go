//go:build linux

package cli

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill a child worker when the test binary
// that started it dies (a go test timeout, a kill): an orphaned worker
// would go on taking the tasks of whichever test leases its database next.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
