package cli

import (
	"context"
	"html/template"
	"net/http"
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
<table><tr><th class="l">queue</th><th>pending</th><th>active</th><th>scheduled</th><th>retry</th><th>archived</th><th>completed</th><th>processed today</th><th>failed today</th><th>latency</th></tr>
{{range .Queues}}<tr><td class="l">{{.Name}}{{if .Paused}} <span class="paused">PAUSED</span>{{end}}</td>{{if .Err}}<td class="l err" colspan="9">{{.Err}}</td>{{else}}
<td>{{.Info.Pending}}</td><td>{{.Info.Active}}</td><td>{{.Info.Scheduled}}</td><td>{{.Info.Retry}}</td><td>{{.Info.Archived}}</td><td>{{.Info.Completed}}</td><td>{{.Info.Processed}}</td><td>{{.Info.Failed}}</td><td>{{.Info.Latency}}</td>{{end}}</tr>
{{end}}</table>
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
			Queues     []uiQueue
			Batches    []uiBatch
			LastErrors []uiLastError
			Failures   []events.Event
			Now        time.Time
			Paused     string
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
			for i := len(recent) - 1; i >= 0 && len(data.Failures) < 20; i-- {
				if recent[i].Event.Event.Failing() {
					data.Failures = append(data.Failures, recent[i].Event)
				}
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		if err := uiPage.Execute(w, data); err != nil {
			http.Error(w, "render failed", http.StatusInternalServerError)
		}
	}
}
