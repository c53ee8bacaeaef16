// Command logpush-onboard onboards Cloudflare Logpush destinations in bulk by
// automating the ownership challenge. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/logpush-onboard/logpush-onboard/internal/cli"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cli.QuietRedisLog()
	return cli.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
}
