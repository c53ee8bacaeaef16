//go:build !unix

package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// lockJournal holds the journal by creating its pid file exclusively (no
// flock here): a run that crashed leaves it, and the next one is refused
// naming that pid until the file is removed.
func lockJournal(_ *os.File, path string) error {
	f, err := os.OpenFile(pidFile(path), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return busyJournal(path)
	}
	if err != nil {
		return fmt.Errorf("lock journal %s: %w", path, err)
	}
	defer f.Close()
	_, err = f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	return err
}
