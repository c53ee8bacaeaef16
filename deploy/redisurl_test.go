package deploy_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/cli"
)

// TestRedisSchemesOffered: every Redis URL scheme the deploy files offer
// is one the CLI accepts (deploy/README.md once offered redis-cluster://,
// which it refuses).
func TestRedisSchemesOffered(t *testing.T) {
	t.Parallel()
	scheme := regexp.MustCompile(`\b(redis[a-z-]*)://`)
	offered := map[string]string{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range scheme.FindAllSubmatch(b, -1) {
			offered[string(m[1])] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(offered) == 0 {
		t.Fatal("no Redis URL in the deploy files: the check would prove nothing")
	}
	for s, file := range offered {
		var stderr bytes.Buffer
		// Port 1 answers nothing: a scheme the CLI accepts fails to connect,
		// one it refuses says so first.
		cli.Run(context.Background(), []string{"status", "--redis", s + "://127.0.0.1:1/0"},
			cli.Env{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &stderr, Getenv: func(string) string { return "" }})
		if strings.Contains(stderr.String(), "not supported") || strings.Contains(stderr.String(), "invalid URL scheme") {
			t.Errorf("%s offers %s://, which the CLI refuses: %s", file, s, stderr.String())
		}
	}
}
