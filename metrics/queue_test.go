package metrics_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/metrics"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// queueNames are the series NewQueueCollector exports: dashboards, alert
// rules and the KEDA scaler in deploy/ are built on them.
var queueNames = []string{
	"asynq_queue_latency_seconds",
	"asynq_queue_memory_usage_approx_bytes",
	"asynq_queue_paused_total",
	"asynq_queue_size",
	"asynq_tasks_enqueued_total",
	"asynq_tasks_failed_total",
	"asynq_tasks_processed_total",
}

type queueBundle struct {
	mr     *miniredis.Miniredis
	client *asynq.Client
	insp   *asynq.Inspector
	reg    *prometheus.Registry
}

func setupQueue(t *testing.T) queueBundle {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewQueueCollector(insp))
	return queueBundle{mr: mr, client: client, insp: insp, reg: reg}
}

// gather returns name{labels} -> value for every asynq series.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = value(mf.GetType(), m)
		}
	}
	return got
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	if typ == dto.MetricType_COUNTER {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func names(series map[string]float64) []string {
	var out []string
	for k := range series {
		name, _, _ := strings.Cut(k, "{")
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func TestQueueCollector(t *testing.T) {
	t.Parallel()
	b := setupQueue(t)
	enqueue := func(opts ...asynq.Option) *asynq.TaskInfo {
		t.Helper()
		info, err := b.client.Enqueue(asynq.NewTask(tasks.TypeChallenge, []byte(`{}`)), append(opts, asynq.Queue(tasks.Queue))...)
		if err != nil {
			t.Fatalf("enqueue: %v", err)
		}
		return info
	}
	enqueue()
	enqueue()
	enqueue(asynq.ProcessIn(time.Hour))
	archived := enqueue()
	if err := b.insp.ArchiveTask(tasks.Queue, archived.ID); err != nil {
		t.Fatalf("archive: %v", err)
	}
	if err := b.insp.PauseQueue(tasks.Queue); err != nil {
		t.Fatalf("pause: %v", err)
	}

	got := gather(t, b.reg)
	if n := names(got); !slices.Equal(n, queueNames) {
		t.Errorf("metric names = %v, want %v", n, queueNames)
	}
	want := map[string]float64{
		`asynq_tasks_enqueued_total{queue=logpush,state=pending}`:   2,
		`asynq_tasks_enqueued_total{queue=logpush,state=scheduled}`: 1,
		`asynq_tasks_enqueued_total{queue=logpush,state=archived}`:  1,
		`asynq_tasks_enqueued_total{queue=logpush,state=active}`:    0,
		`asynq_tasks_enqueued_total{queue=logpush,state=retry}`:     0,
		`asynq_tasks_enqueued_total{queue=logpush,state=completed}`: 0,
		`asynq_queue_size{queue=logpush}`:                           4,
		`asynq_queue_paused_total{queue=logpush}`:                   1,
		`asynq_tasks_processed_total{queue=logpush}`:                0,
		`asynq_tasks_failed_total{queue=logpush}`:                   0,
	}
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: missing; got %v", k, got)
		case g != v:
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	if v := got[`asynq_queue_latency_seconds{queue=logpush}`]; v < 0 {
		t.Errorf("latency = %v, want >= 0", v)
	}

	if err := b.insp.UnpauseQueue(tasks.Queue); err != nil {
		t.Fatalf("unpause: %v", err)
	}
	if v := gather(t, b.reg)[`asynq_queue_paused_total{queue=logpush}`]; v != 0 {
		t.Errorf("after unpause: asynq_queue_paused_total = %v, want 0", v)
	}
}

// Before the first enqueue there is no queue, so no series; a Redis that
// does not answer gives an empty scrape, not an error that would fail the
// whole /metrics page.
func TestQueueCollectorNoQueueOrNoRedis(t *testing.T) {
	t.Parallel()
	b := setupQueue(t)
	if got := gather(t, b.reg); len(got) != 0 {
		t.Errorf("no queue yet: got %v, want no series", got)
	}
	if _, err := b.client.Enqueue(asynq.NewTask(tasks.TypeChallenge, nil), asynq.Queue(tasks.Queue)); err != nil {
		t.Fatal(err)
	}
	b.mr.Close()
	if got := gather(t, b.reg); len(got) != 0 {
		t.Errorf("redis down: got %v, want no series", got)
	}
}
