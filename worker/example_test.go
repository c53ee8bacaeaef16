package worker_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// Run a worker inside a service, beside its other work: it takes the
// tasks that producers (producer.New) enqueue on the same Redis, and
// serves /metrics, /healthz and /readyz on the service's own listener.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()

	w, err := worker.New(ctx, rdb, worker.Config{
		Credentials: credentials.FromEnv(nil), // CLOUDFLARE_API_TOKEN
		APIRate:     "1000/5m",                // headroom for the dashboard and Terraform
		Server:      worker.ServerConfig{Concurrency: 50},
		Logger:      log,
	})
	if err != nil {
		log.Error("worker config", "err", err) // a *worker.ConfigError names the field
		return
	}
	if err := w.Start(); err != nil {
		log.Error("start worker", "err", err)
		return
	}
	http.Handle("/onboarding/", http.StripPrefix("/onboarding", w.Handler()))
	<-ctx.Done()
	w.Shutdown() // running tasks get Server.ShutdownTimeout, then go back to the queue
}
