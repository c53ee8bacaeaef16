package metrics

import (
	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// NewQueueCollector returns a collector of asynq's queue metrics, under the
// names asynq's own exporter (github.com/hibiken/asynq/x/metrics) uses, so
// that dashboards built for asynq work unchanged. On every scrape it reads
// each queue's state from Redis through insp and exports, labelled by queue:
//
//   - asynq_tasks_enqueued_total{queue,state}: tasks in the queue now, by
//     state (active, pending, scheduled, retry, archived, completed). A gauge
//     despite its name.
//   - asynq_queue_size{queue}: all tasks in the queue, every state.
//   - asynq_queue_latency_seconds{queue}: age of the oldest pending task.
//   - asynq_queue_memory_usage_approx_bytes{queue}: sampled Redis memory.
//   - asynq_tasks_processed_total{queue}, asynq_tasks_failed_total{queue}:
//     today's counts (asynq keeps them per day, so they reset at 00:00 UTC).
//   - asynq_queue_paused_total{queue}: 1 while the queue is paused, else 0.
//
// A queue appears once a task was enqueued into it. Every worker sharing a
// Redis exports the same values: aggregate them with max, not sum. A Redis
// error is logged by asynq's collector and the scrape has no asynq series.
func NewQueueCollector(insp *asynq.Inspector) prometheus.Collector {
	return asynqmetrics.NewQueueMetricsCollector(insp)
}
