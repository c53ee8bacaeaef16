package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/words"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// The progress view of a batch, for run, demo and status --watch: on a
// terminal it redraws a bar per state, the rate, an ETA the API budget
// bounds, the retried calls and the latest failures; elsewhere (a pipe, a
// CI log) it prints one plain line per period and each failure once.

// retries counts the Cloudflare API calls answered with a transient error,
// which the workers retry: instead of a log line each.
type retries struct {
	server, limited, noAnswer int64 // 5xx; 429; timeouts, 408, no answer
}

func (r retries) total() int64 { return r.server + r.limited + r.noAnswer }

// String is "37 calls retried: 21x 5xx, 16x 429".
func (r retries) String() string {
	var parts []string
	for _, p := range []struct {
		n    int64
		what string
	}{{r.server, "5xx"}, {r.limited, "429"}, {r.noAnswer, "timeout or no answer"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%dx %s", p.n, p.what))
		}
	}
	if len(parts) == 0 {
		return "no call retried"
	}
	return fmt.Sprintf("%s retried: %s", words.Plural(r.total(), "call"), strings.Join(parts, ", "))
}

// apiRetries reads the retried calls off a worker's api_requests_total.
func apiRetries(g prometheus.Gatherer) retries {
	var r retries
	mfs, err := g.Gather()
	if err != nil {
		return r
	}
	for _, mf := range mfs {
		if mf.GetName() != "logpush_onboard_api_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var code string
			for _, l := range m.GetLabel() {
				if l.GetName() == "code" {
					code = l.GetValue()
				}
			}
			n := int64(m.GetCounter().GetValue())
			status, _ := strconv.Atoi(code)
			switch {
			case code == "error" || status == 408:
				r.noAnswer += n
			case status == 429:
				r.limited += n
			case status >= 500:
				r.server += n
			}
		}
	}
	return r
}

// frame is one drawing of the view.
type frame struct {
	st       events.BatchStatus // counts over the whole input
	elapsed  time.Duration
	perSec   float64
	eta      time.Duration // < 0: unknown
	retries  *retries      // nil: not known here
	failures []events.Event
	// paused says what holds the rows (worker.PauseState), in place of
	// the ETA; "": nothing.
	paused string
}

// etaText is the frame's ETA, or what holds the rows instead: a pause,
// or, once nothing else is in flight, the rows that wait for a token
// (no time brings those: submit-token does).
func (f frame) etaText() string {
	if f.paused != "" {
		return f.paused
	}
	if n := f.st.Counts[events.AwaitingToken]; n > 0 && inFlight(f.st) <= 0 {
		return fmt.Sprintf("%d awaiting token: logpush-onboard submit-token --batch %s --file tokens.csv", n, f.st.ID)
	}
	if n := f.st.Counts[events.Watching]; n > 0 && inFlight(f.st) == n {
		// The rate and ETA are the onboarding's: what is left is the
		// jobs' first push, which no rate here foretells.
		return fmt.Sprintf("%d jobs created, waiting for their first push", n)
	}
	return "ETA " + etaString(f.eta)
}

// pausesOf reads what is paused on rdb, for a frame: "" when nothing is
// (or Redis does not answer: the frame says so elsewhere).
func pausesOf(rdb redis.UniversalClient) func(ctx context.Context) string {
	return func(ctx context.Context) string {
		p, err := worker.Pauses(ctx, rdb)
		if err != nil {
			return ""
		}
		return p.String()
	}
}

// inFlight is the number of destinations without an outcome yet.
func inFlight(st events.BatchStatus) int64 {
	return st.Total - st.Done() - st.Counts[events.AwaitingToken]
}

// view draws frames on w.
type view struct {
	w        io.Writer
	terminal bool
	lines    int // lines of the last terminal frame, to redraw over
	failed   int // failures already printed (plain)
}

// newView draws on w, redrawing when w is a terminal.
func newView(w io.Writer) *view {
	return &view{w: w, terminal: isTerminal(w)}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (v *view) draw(f frame) {
	if v.terminal {
		v.drawTerminal(f)
	} else {
		v.drawPlain(f)
	}
}

func etaString(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(time.Second).String()
}

func (v *view) drawPlain(f frame) {
	st := f.st
	line := fmt.Sprintf("[%6.1fs] %d/%d done (%.0f%%)  validated %d  failed %d  not_required %d  awaiting_token %d  in flight %d (%d waiting for a busy path)  %.1f/s  %s",
		f.elapsed.Seconds(), st.Done(), st.Total, percent(st), st.Counts[events.Validated], st.Counts[events.Failed],
		st.Counts[events.NotRequired], st.Counts[events.AwaitingToken], inFlight(st), st.Counts[events.WaitingPath], f.perSec, f.etaText())
	if n := st.Counts[events.Watching] + st.Counts[events.Flowing] + st.Counts[events.JobFailing] + st.Counts[events.NoDataYet]; n > 0 {
		line += fmt.Sprintf("  jobs: watching %d  flowing %d  job_failing %d  no_data_yet %d", st.Counts[events.Watching],
			st.Counts[events.Flowing], st.Counts[events.JobFailing], st.Counts[events.NoDataYet])
	}
	if n := st.Counts[events.Migrated] + st.Counts[events.Copied]; n > 0 {
		line += fmt.Sprintf("  jobs: migrated %d  copied %d", st.Counts[events.Migrated], st.Counts[events.Copied])
	}
	if f.retries != nil && f.retries.total() > 0 {
		line += "  " + f.retries.String()
	}
	fmt.Fprintln(v.w, line)
	for _, e := range f.failures[min(v.failed, len(f.failures)):] {
		fmt.Fprintln(v.w, "  failed: "+failureText(e))
	}
	v.failed = len(f.failures)
}

func (v *view) drawTerminal(f frame) {
	st := f.st
	lines := []string{fmt.Sprintf("%s  %d/%d done  %.0f%%  %.1f/s  %s  (%s)",
		st.ID, st.Done(), st.Total, percent(st), f.perSec, f.etaText(), f.elapsed.Round(time.Second))}
	if f.paused != "" {
		// The whole text on lines of its own: the first is cut at 160.
		lines[0] = fmt.Sprintf("%s  %d/%d done  %.0f%%  (%s)", st.ID, st.Done(), st.Total, percent(st), f.elapsed.Round(time.Second))
		for p := f.paused; p != ""; {
			n := min(len(p), 150)
			lines = append(lines, "  "+p[:n])
			p = p[n:]
		}
	}
	for _, s := range []events.State{events.Validated, events.Failed, events.NotRequired, events.AwaitingToken} {
		lines = append(lines, fmt.Sprintf("  %-15s %s %7d", s, bar(st.Counts[s], st.Total), st.Counts[s]))
	}
	for _, s := range []events.State{events.Flowing, events.JobFailing, events.NoDataYet, events.Watching, events.Migrated, events.Copied} {
		if st.Counts[s] > 0 {
			lines = append(lines, fmt.Sprintf("  %-15s %s %7d", s, bar(st.Counts[s], st.Total), st.Counts[s]))
		}
	}
	lines = append(lines, fmt.Sprintf("  %-15s %s %7d  queued %d, waiting for a busy path %d, challenging %d, polling %d, validating %d", "in flight",
		bar(inFlight(st), st.Total), inFlight(st), st.Counts[events.Queued], st.Counts[events.WaitingPath], st.Counts[events.Challenging],
		st.Counts[events.Polling], st.Counts[events.Validating]+st.Counts[events.CreatingJob]))
	if f.retries != nil {
		lines = append(lines, "  "+f.retries.String())
	}
	if n := len(f.failures); n > 0 {
		lines = append(lines, "  latest failures:")
		for _, e := range f.failures[max(0, n-5):] {
			lines = append(lines, "    "+failureText(e))
		}
	}
	var b strings.Builder
	if v.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.lines)
	}
	for _, l := range lines {
		if len(l) > 160 {
			l = l[:157] + "..."
		}
		b.WriteString("\r\x1b[2K" + l + "\n")
	}
	io.WriteString(v.w, b.String())
	v.lines = len(lines)
}

func percent(st events.BatchStatus) float64 {
	if st.Total == 0 {
		return 100
	}
	return 100 * float64(st.Done()) / float64(st.Total)
}

func bar(n, total int64) string {
	const width = 30
	k := width
	if total > 0 {
		k = int(n * width / total)
	}
	return "[" + strings.Repeat("#", k) + strings.Repeat(".", width-k) + "]"
}

// failureText is "line 12 s3://bkt/p?region=x: HTTP 403, codes 1004: message";
// the destination and the message are the event's, redacted.
func failureText(e events.Event) string {
	var why string
	if e.Error != nil {
		if e.Error.HTTPStatus != 0 {
			why = fmt.Sprintf("HTTP %d, ", e.Error.HTTPStatus)
		}
		if len(e.Error.Codes) > 0 {
			why += "codes " + strings.Trim(fmt.Sprint(e.Error.Codes), "[]") + ": "
		}
		why += e.Error.Message
	}
	return fmt.Sprintf("line %d %s: %s", e.Line, e.Destination, why)
}

// meter measures the rate over the last 20 seconds (the start of a batch,
// where every destination that needs no challenge ends at once, would
// inflate a longer one) and the ETA.
type meter struct {
	rate budget.Rate // zero Limit: no budget bound
	hist []sample
}

type sample struct {
	at   time.Time
	done int64
}

// observe returns the measured rate and the ETA: the larger of what that
// rate and what the API budget allow, two calls per destination still to
// be challenged, one per destination waiting for validation.
func (m *meter) observe(now time.Time, st events.BatchStatus) (perSec float64, eta time.Duration) {
	m.hist = append(m.hist, sample{now, st.Done()})
	for len(m.hist) > 2 && now.Sub(m.hist[0].at) > 20*time.Second {
		m.hist = m.hist[1:]
	}
	if over := now.Sub(m.hist[0].at); over > 0 {
		perSec = float64(st.Done()-m.hist[0].done) / over.Seconds()
	}
	eta = -1
	if m.rate.Limit > 0 {
		calls := 2*(st.Counts[events.Queued]+st.Counts[events.WaitingPath]+st.Counts[events.Challenging]) + st.Counts[events.Polling] + st.Counts[events.Validating]
		eta = time.Duration(float64(calls) / (float64(m.rate.Limit) / m.rate.Window.Seconds()) * float64(time.Second))
	}
	left := inFlight(st)
	switch {
	case left == 0:
		eta = 0
	case perSec > 0:
		eta = max(eta, time.Duration(float64(left)/perSec*float64(time.Second)))
	}
	return perSec, eta
}

// watchConfig says how watch follows a batch.
type watchConfig struct {
	view *view
	// every is the time between frames.
	every time.Duration
	// rate is the workers' API budget, for the ETA; zero: none.
	rate budget.Rate
	// retries reads the retried calls; nil: not shown.
	retries func() retries
	// from is the stream id to read the events after ("0": every event);
	// "": only the latest 200 and the new ones.
	from string
	// onEvents receives the batch's outcome events as they come (run
	// journals them); an error stops the watch.
	onEvents func([]events.Event) error
	// prior are outcomes finished before this batch's destinations were
	// enqueued (run's journal), by state: added to the counts.
	prior map[events.State]int64
	// start is when the batch started; default now.
	start time.Time
	// timeout gives up after this long; 0: never.
	timeout time.Duration
	// pauses says what holds the rows (pausesOf), shown in place of the
	// ETA; nil: not shown.
	pauses func(ctx context.Context) string
	// outage, when set, waits out a Redis outage (status --watch); nil:
	// an outage ends the watch.
	outage *redisWaiter
}

// outcome reports whether an event is a destination's outcome.
func outcome(e events.Event) bool {
	return e.Event.Terminal() || e.Event == events.AwaitingToken
}

// watch draws the progress of batch id until every destination has an
// outcome (or waits for a token), and returns the counts, prior included.
func watch(ctx context.Context, store *ledger.Store, id string, cfg watchConfig) (events.BatchStatus, error) {
	if cfg.start.IsZero() {
		cfg.start = time.Now()
	}
	var deadline <-chan time.Time
	if cfg.timeout > 0 {
		t := time.NewTimer(cfg.timeout)
		defer t.Stop()
		deadline = t.C
	}
	var failures []events.Event
	after := cfg.from
	if after == "" {
		after = "0"
		recent, err := store.Last(ctx, 200)
		if err != nil {
			return events.BatchStatus{}, err
		}
		for _, e := range recent {
			after = e.ID
			if e.Event.BatchID == id && e.Event.Event == events.Failed {
				failures = append(failures, e.Event)
			}
		}
	}
	// read takes the events after the last one read, waiting up to block.
	read := func(block time.Duration) (int, error) {
		entries, err := store.Read(ctx, after, 1000, block)
		if err != nil {
			return 0, err
		}
		var mine []events.Event
		for _, e := range entries {
			after = e.ID
			if e.Event.BatchID == id && outcome(e.Event) {
				mine = append(mine, e.Event)
				if e.Event.Event == events.Failed {
					failures = append(failures, e.Event)
				}
			}
		}
		if len(mine) > 0 && cfg.onEvents != nil {
			if err := cfg.onEvents(mine); err != nil {
				return 0, err
			}
		}
		return len(entries), nil
	}
	m := meter{rate: cfg.rate}
	block := min(cfg.every, 500*time.Millisecond)
	var last events.BatchStatus // the latest status read
	var drawn time.Time
	for {
		if _, err := read(block); err != nil {
			if cfg.outage.retry(ctx, err) {
				continue
			}
			st, _ := batchWithPrior(context.WithoutCancel(ctx), store, id, cfg.prior)
			return st, err
		}
		st, err := batchWithPrior(ctx, store, id, cfg.prior)
		if cfg.outage.retry(ctx, err) {
			continue
		}
		if errors.Is(err, ledger.ErrNoBatch) && last.ID != "" {
			return last, batchGone(last)
		}
		if err != nil {
			return st, err
		}
		cfg.outage.answered()
		last = st
		done := inFlight(st) <= 0
		if done {
			// The state and the event are written by one script: every
			// outcome counted is on the stream; take the rest of them.
			for {
				n, err := read(0)
				if err != nil {
					return st, err
				}
				if n == 0 {
					break
				}
			}
		}
		if now := time.Now(); done || now.Sub(drawn) >= cfg.every {
			f := frame{st: st, elapsed: now.Sub(cfg.start), failures: failures}
			f.perSec, f.eta = m.observe(now, st)
			if cfg.pauses != nil && !done {
				f.paused = cfg.pauses(ctx)
			}
			if cfg.retries != nil {
				r := cfg.retries()
				f.retries = &r
			}
			cfg.view.draw(f)
			drawn = now
		}
		if done {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-deadline:
			return st, &exitError{code: 1, err: fmt.Errorf("batch not done after %s", cfg.timeout)}
		default:
		}
	}
}

// batchWithPrior is the batch's status with prior outcomes added.
func batchWithPrior(ctx context.Context, store *ledger.Store, id string, prior map[events.State]int64) (events.BatchStatus, error) {
	st, err := store.Batch(ctx, id)
	if err != nil {
		return st, err
	}
	for s, n := range prior {
		st.Counts[s] += n
		st.Total += n
	}
	return st, nil
}
