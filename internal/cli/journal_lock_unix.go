//go:build unix

package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// lockJournal takes the exclusive lock of the open journal f (flock: the
// kernel releases it when the process ends, however it ends) and writes
// this process's pid beside it; another run's lock is busyJournal.
func lockJournal(f *os.File, path string) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return busyJournal(path)
		}
		return fmt.Errorf("lock journal %s: %w", path, err)
	}
	if err := os.WriteFile(pidFile(path), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("lock journal %s: %w", path, err)
	}
	return nil
}
