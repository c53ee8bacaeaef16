package cli

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
)

// reportRow is one input row's outcome; Line joins it back to the input.
type reportRow struct {
	Line            int             `json:"line"`
	Scope           string          `json:"scope"`
	ScopeID         string          `json:"scope_id"`
	Destination     string          `json:"destination"`
	DestinationType string          `json:"destination_type"`
	State           events.State    `json:"state"`
	Filename        string          `json:"filename,omitempty"`
	Attempts        events.Attempts `json:"attempts"`
	Round           int             `json:"round,omitempty"`
	Error           *events.Error   `json:"error,omitempty"`
	// LastError is the latest error of a destination still in flight.
	LastError *ledger.LastError `json:"last_error,omitempty"`
}

func runReport(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("report", env)
	c.register(fs, env)
	batch := fs.String("batch", "", "batch id (required)")
	format := fs.String("format", "csv", "csv or json (one JSON object per line)")
	out := fs.String("out", "-", "output file; - for standard output")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *batch == "" || (*format != "csv" && *format != "json") {
		fmt.Fprintln(env.Stderr, "report needs --batch ID and --format csv|json")
		return errUsage
	}
	rdb, cl, closeRedis, err := c.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
	store := cl.Ledger()
	if _, err := store.Batch(ctx, *batch); errors.Is(err, ledger.ErrNoBatch) {
		return noBatch(ctx, rdb, *batch)
	} else if err != nil {
		return err
	}
	last, err := store.LastErrors(ctx, *batch)
	if err != nil {
		return err
	}
	var rows []reportRow
	err = store.Dests(ctx, *batch, func(h string, st ledger.DestState) error {
		row := reportRow{Line: st.Line, Scope: st.Scope, ScopeID: st.ScopeID, Destination: st.Destination,
			DestinationType: st.Type, State: st.State, Filename: st.Filename, Attempts: st.Attempts, Round: st.Round, Error: st.Error}
		if e, ok := last[h]; ok && !st.State.Terminal() {
			row.LastError = &e
		}
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Line < rows[j].Line })
	w := env.Stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if *format == "json" {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	return writeReportCSV(w, rows)
}

func writeReportCSV(w io.Writer, rows []reportRow) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"line", "scope", "scope_id", "destination", "destination_type", "state", "filename",
		"attempts_challenge", "attempts_poll", "attempts_validate", "round", "http_status", "error_codes", "error_message", "last_error", "worker"})
	for _, r := range rows {
		var status, codes, msg, last, worker string
		if r.LastError != nil {
			last, worker = r.LastError.Message, r.LastError.Worker
		}
		if r.Error != nil {
			if r.Error.HTTPStatus != 0 {
				status = strconv.Itoa(r.Error.HTTPStatus)
			}
			cs := make([]string, len(r.Error.Codes))
			for i, c := range r.Error.Codes {
				cs[i] = strconv.Itoa(c)
			}
			codes, msg = strings.Join(cs, " "), r.Error.Message
			worker = cmp.Or(r.Error.Worker, worker)
		}
		cw.Write([]string{strconv.Itoa(r.Line), r.Scope, r.ScopeID, r.Destination, r.DestinationType, string(r.State), r.Filename,
			strconv.Itoa(r.Attempts.Challenge), strconv.Itoa(r.Attempts.Poll), strconv.Itoa(r.Attempts.Validate),
			strconv.Itoa(r.Round), status, codes, msg, last, worker})
	}
	cw.Flush()
	return cw.Error()
}
