package cli

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// uiPage is the read-only queue view served on /ui with worker --web-ui.
var uiPage = template.Must(template.New("ui").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>logpush-onboard</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.bar{background:#eee;width:240px;height:12px;display:inline-block}.bar span{background:#2a7;height:12px;display:block}
.paused{color:#b00;font-weight:bold}.err{color:#b00}
</style></head><body>
<h1>logpush-onboard</h1>
{{if .Paused}}<p class="paused">{{.Paused}}</p>{{end}}
<h2>Queues</h2>
<table><tr><th class="l">queue</th><th>pending</th><th>active</th><th>scheduled</th><th>retry</th><th>waiting for a file or path</th><th>archived</th><th>completed</th><th>processed today</th><th>task errors today</th><th>latency</th></tr>
{{range .Queues}}<tr><td class="l">{{.Name}}{{if .Paused}} <span class="paused">PAUSED</span>{{end}}</td>{{if .Err}}<td class="l err" colspan="10">{{.Err}}</td>{{else}}
<td>{{.Info.Pending}}</td><td>{{.Info.Active}}</td><td>{{.Info.Scheduled}}</td><td>{{.Retry}}</td><td>{{.Waiting}}</td><td>{{.Info.Archived}}</td><td>{{.Info.Completed}}</td><td>{{.Info.Processed}}</td><td>{{.Info.Failed}}</td><td>{{.Info.Latency}}</td>{{end}}</tr>
{{end}}</table>
<p>Destinations failed today (UTC): <b{{if .FailedToday}} class="err"{{end}}>{{.FailedToday}}</b>. A failed destination ends its task without an error, so asynq's task errors do not count it; a task waiting for its challenge file or a busy path is snoozed, not retried.</p>
<h2>Batches</h2>
<table><tr><th class="l">batch</th><th class="l">source</th><th class="l">progress</th><th>done</th><th>validated</th><th>failed</th><th>not required</th><th>flowing</th><th>job failing</th><th>no data yet</th><th>watching</th><th>awaiting token</th><th>waiting for a busy path</th><th>in flight</th></tr>
{{range .Batches}}<tr><td class="l">{{.ID}}</td><td class="l">{{.Source}}</td><td class="l"><span class="bar"><span style="width:{{.Percent}}%"></span></span> {{.Percent}}%</td>
<td>{{.Done}}/{{.Total}}</td><td>{{.Count "validated"}}</td><td>{{.Count "failed"}}</td><td>{{.Count "not_required"}}</td><td>{{.Count "flowing"}}</td><td{{if .Count "job_failing"}} class="err"{{end}}>{{.Count "job_failing"}}</td><td>{{.Count "no_data_yet"}}</td><td>{{.Count "watching"}}</td><td>{{.Count "awaiting_token"}}</td><td>{{.Count "waiting_path"}}</td><td>{{.InFlight}}</td></tr>
{{else}}<tr><td class="l" colspan="14">no batches</td></tr>{{end}}</table>
<h2>In flight after an error</h2>
<table><tr><th class="l">time</th><th class="l">batch</th><th>line</th><th class="l">state</th><th>http</th><th class="l">last error</th></tr>
{{range .LastErrors}}<tr><td class="l">{{.Time.Format "15:04:05"}}</td><td class="l">{{.Batch}}</td><td>{{.Line}}</td><td class="l">{{.State}}</td>
<td>{{with .HTTPStatus}}{{.}}{{end}}</td><td class="l">{{.Message}}</td></tr>
{{else}}<tr><td class="l" colspan="6">none</td></tr>{{end}}</table>
<h2>Recent failures (and failing jobs)</h2>
<table><tr><th class="l">time</th><th class="l">batch</th><th>line</th><th class="l">destination</th><th>http</th><th class="l">codes</th><th class="l">message</th></tr>
{{range .Failures}}<tr><td class="l">{{.Time.Format "15:04:05"}}</td><td class="l">{{.BatchID}}</td><td>{{.Line}}</td><td class="l">{{.Destination}}</td>
<td>{{if .Error}}{{with .Error.HTTPStatus}}{{.}}{{end}}{{end}}</td><td class="l">{{if .Error}}{{range .Error.Codes}}{{.}} {{end}}{{end}}</td><td class="l">{{if .Error}}{{.Error.Message}}{{end}}</td></tr>
{{else}}<tr><td class="l" colspan="7">none</td></tr>{{end}}</table>
<p>Read-only. Refreshes every 5 s. {{.Now.Format "2006-01-02 15:04:05 MST"}}</p>
</body></html>`))

// uiLastError is an in-flight destination's last error with its batch.
type uiLastError struct {
	ledger.LastError
	Batch string
}

type uiBatch struct {
	events.BatchStatus
	Percent  int
	InFlight int64
}

// uiQueue is one queue's row on the page.
type uiQueue struct {
	Name   string
	Paused bool
	Info   *asynq.QueueInfo
	Err    string
	// Retry are the tasks asynq holds for a retry after an error, Waiting
	// those snoozed (worker.SnoozeError: waiting for a challenge file or a
	// busy path), which asynq counts as retry too.
	Retry, Waiting int
}

// snoozed counts, per queue, the retry tasks that are snoozes (their last
// error a worker.SnoozeError), from at most uiRetryScan of them; the
// rest, unseen, count as retries.
func snoozed(insp *asynq.Inspector, queue string, retry int) int {
	n := 0
	for page := 1; (page-1)*uiRetryPage < min(retry, uiRetryScan); page++ {
		ts, err := insp.ListRetryTasks(queue, asynq.PageSize(uiRetryPage), asynq.Page(page))
		if err != nil {
			break
		}
		for _, t := range ts {
			if strings.HasPrefix(t.LastErr, "snooze ") { // worker.SnoozeError's message
				n++
			}
		}
		if len(ts) < uiRetryPage {
			break
		}
	}
	return n
}

// uiRetryPage and uiRetryScan bound the retry tasks the page reads.
const (
	uiRetryPage = 500
	uiRetryScan = 5000
)

// failedToday counts the failed events since midnight UTC: the stream's
// ids are their times, so the read starts there; at most uiFailedScan
// events are read.
func failedToday(ctx context.Context, store *ledger.Store, now time.Time) (int, error) {
	midnight := now.UTC().Truncate(24 * time.Hour)
	after := fmt.Sprintf("%d-0", midnight.UnixMilli()-1)
	n := 0
	for read := 0; read < uiFailedScan; {
		entries, err := store.Read(ctx, after, 1000, 0)
		if err != nil {
			return n, err
		}
		if len(entries) == 0 {
			break
		}
		read += len(entries)
		for _, e := range entries {
			after = e.ID
			if e.Event.Event == events.Failed {
				n++
			}
		}
	}
	return n, nil
}

const uiFailedScan = 100_000

// latestFailures are the newest failing outcomes of recent, newest first,
// at most n: a destination whose newer outcome is not failing (retried
// and validated) is left out, and each destination is shown once.
func latestFailures(recent []ledger.Entry, n int) []events.Event {
	var out []events.Event
	seen := map[string]bool{}
	for i := len(recent) - 1; i >= 0 && len(out) < n; i-- {
		e := recent[i].Event
		if !outcome(e) {
			continue
		}
		k := e.BatchID + "\x00" + e.Scope + "\x00" + e.ScopeID + "\x00" + e.Destination
		if seen[k] {
			continue
		}
		seen[k] = true
		if e.Event.Failing() {
			out = append(out, e)
		}
	}
	return out
}

// Count is the batch's count of state s, for the template.
func (b uiBatch) Count(s string) int64 { return b.Counts[events.State(s)] }

// uiHandler renders the queue, the recent batches and the recent failures.
// Destinations on the page are the redacted ones of the events.
// pauses (pausesOf) says what holds the rows, at the top of the page.
func uiHandler(store *ledger.Store, insp *asynq.Inspector, pauses func(context.Context) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		data := struct {
			Queues      []uiQueue
			Batches     []uiBatch
			LastErrors  []uiLastError
			Failures    []events.Event
			FailedToday int
			Now         time.Time
			Paused      string
		}{Now: time.Now(), Paused: pauses(ctx)}
		infos, qerr := worker.QueueInfos(insp)
		for i, q := range tasks.Queues() {
			uq := uiQueue{Name: q}
			switch {
			case qerr != nil:
				uq.Err = "queue unavailable: redis unreachable"
			case infos[i] == nil:
				uq.Err = "no task was ever enqueued"
			default:
				uq.Info, uq.Paused = infos[i], infos[i].Paused
				uq.Waiting = snoozed(insp, q, infos[i].Retry)
				uq.Retry = infos[i].Retry - uq.Waiting
			}
			data.Queues = append(data.Queues, uq)
		}
		ids, err := store.Batches(ctx, 20)
		if err != nil {
			http.Error(w, "redis unreachable", http.StatusServiceUnavailable)
			return
		}
		for _, id := range ids {
			st, err := store.Batch(ctx, id)
			if err != nil {
				continue
			}
			b := uiBatch{BatchStatus: st}
			if st.Total > 0 {
				b.Percent = int(100 * st.Done() / st.Total)
			}
			b.InFlight = st.Total - st.Done() - st.Counts[events.AwaitingToken]
			data.Batches = append(data.Batches, b)
			if b.InFlight > 0 && len(data.LastErrors) < 20 {
				last, err := store.LastErrors(ctx, id)
				if err != nil {
					continue
				}
				for _, e := range newestErrors(last, 20-len(data.LastErrors)) {
					data.LastErrors = append(data.LastErrors, uiLastError{e, id})
				}
			}
		}
		recent, err := store.Last(ctx, 500)
		if err == nil {
			data.Failures = latestFailures(recent, 20)
		}
		data.FailedToday, _ = failedToday(ctx, store, data.Now)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if err := uiPage.Execute(w, data); err != nil {
			http.Error(w, "render failed", http.StatusInternalServerError)
		}
	}
}
