package cli

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"

	"github.com/logpush-onboard/logpush-onboard/internal/bench"
)

// runBench measures the pipeline against the simulator and a Redis (see
// package bench). Its worker processes are this binary's worker command.
func runBench(ctx context.Context, env Env, args []string) error {
	benv := bench.Env{Stdout: env.Stdout, Stderr: env.Stderr, Getenv: env.Getenv,
		Usage: func(fs *flag.FlagSet) { setUsage(fs, commandHead("bench")) }}
	if exe, err := os.Executable(); err == nil {
		benv.Worker = func(args []string) *exec.Cmd { return exec.Command(exe, args...) }
	}
	err := bench.Main(ctx, benv, args)
	if errors.Is(err, bench.ErrUsage) {
		return errUsage
	}
	return err
}
