package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/words"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// submission is one token an operator read from a destination the worker
// cannot read (Sumo Logic's HTTP source).
type submission struct {
	// line is the row's line in a --file; 0 for the one destination of
	// the flags.
	line  int
	row   input.Row
	token string
	// job is the row's job when the batch was enqueued with --create-job:
	// part of the destination's identity, and created after validation.
	job *tasks.JobSpec
	// credential names the row's credential (its credential column), whose
	// client validates the token; "": the one the batch recorded for the
	// destination (the default credential when it recorded none).
	credential string
}

func runSubmitToken(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("submit-token", env)
	c.register(fs, env)
	batch := fs.String("batch", "", "batch id (required)")
	file := fs.String("file", "", "CSV with header zone_id,account_id,destination_conf,token (the input's columns, job columns included with --create-job, plus the token)")
	zone := fs.String("zone-id", "", "single destination: its zone id")
	account := fs.String("account-id", "", "single destination: its account id")
	conf := fs.String("destination-conf", "", "single destination: its destination_conf, exactly as in the input")
	token := fs.String("token", "-", "single destination: the ownership token, or - to read it from standard input")
	wait := fs.Duration("wait", time.Minute, "wait this long for the workers' verdict on the tokens (0: do not wait)")
	credential := fs.String("credential", "", "single destination: the name of its credential, as in the input's credential column (a --file gives it in a credential column); default: the one the batch recorded at enqueue")
	var cf credentialsFlag
	cf.register(fs, env)
	setUsage(fs, "usage: logpush-onboard submit-token --batch ID (--file TOKENS.csv | --zone-id|--account-id ID --destination-conf CONF [--token TOKEN|-])\n\n"+
		"Submits the ownership tokens the worker cannot read itself (Sumo Logic: the token went to the HTTP source) for validation.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *batch == "" || (*file == "") == (*conf == "") {
		fs.Usage()
		return errUsage
	}
	if *wait < 0 {
		fmt.Fprintf(env.Stderr, "-wait %s: must not be negative\n", *wait)
		return errUsage
	}
	if err := c.shared(); err != nil {
		return err
	}
	subs, err := readSubmissions(env, *file, *zone, *account, *conf, *token, *credential)
	if err != nil {
		return notStarted(err)
	}
	// The names are checked against the file the workers read: a token
	// validated under another credential than its row's would be refused.
	set, err := cf.load(env, nil)
	if err != nil {
		return err
	}
	for _, s := range subs {
		switch {
		case s.credential != "" && !credentials.ValidName(s.credential):
			return &exitError{code: 2, err: fmt.Errorf("%s: credential: names are 1 to 64 letters, digits, '.', '_' or '-'", s.where())}
		case set.File != "" && s.credential != "" && !set.Has(s.credential):
			return &exitError{code: 2, err: fmt.Errorf("%s: credential: unknown credential %q (known: %s)", s.where(), s.credential, strings.Join(set.Names(), ", "))}
		}
	}
	rdb, cl, closeRedis, err := c.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
	if _, err := cl.BatchStatus(ctx, *batch); errors.Is(err, ledger.ErrNoBatch) {
		return noBatch(ctx, rdb, *batch)
	} else if err != nil {
		return err
	}
	var sent []sentToken
	var bad int
	for _, s := range subs {
		challenges, err := cl.SubmitToken(ctx, s.dest(*batch), s.token)
		if err != nil {
			bad++
			fmt.Fprintf(env.Stderr, "%s: %v\n", s.where(), err)
			continue
		}
		sent = append(sent, sentToken{s, challenges})
	}
	fmt.Fprintf(env.Stdout, "batch %s: %s submitted for validation, %d refused\n", *batch, words.Plural(int64(len(sent)), "token"), bad)
	if *wait > 0 && len(sent) > 0 {
		bad += awaitVerdicts(ctx, env, cl.Ledger(), *batch, sent, *wait)
	}
	if bad > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// where names the submission in a message: its line in a --file, else the
// destination (its conf redacted), which the flags gave.
func (s submission) where() string {
	if s.line > 0 {
		return fmt.Sprintf("line %d", s.line)
	}
	return fmt.Sprintf("%s %s %s", s.row.Scope, s.row.ScopeID, s.row.Conf.Redacted())
}

// sentToken is a submitted token and the challenges its destination had:
// one more means Cloudflare rejected the token and the worker asked again.
type sentToken struct {
	submission
	challenges int
}

// awaitVerdicts waits until the workers validated each submitted token or
// Cloudflare rejected it, says which were rejected and returns their number
// with those without a verdict in time.
func awaitVerdicts(ctx context.Context, env Env, store *ledger.Store, batch string, sent []sentToken, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	var validated, bad int
	for len(sent) > 0 {
		var open []sentToken
		for _, s := range sent {
			st, err := store.Get(ctx, ledger.Key{Batch: batch, Hash: s.dest(batch).Hash()})
			switch {
			case err != nil:
				bad++
				fmt.Fprintf(env.Stderr, "%s: %v\n", s.where(), err)
			case st.State == events.Validated:
				validated++
			case st.State == events.Failed:
				bad++
				msg := "failed"
				if st.Error != nil {
					msg = st.Error.Message
				}
				fmt.Fprintf(env.Stderr, "%s: Cloudflare rejected the token: %s\n", s.where(), msg)
			case st.Attempts.Challenge > s.challenges:
				bad++
				fmt.Fprintf(env.Stderr, "%s: Cloudflare rejected the token (code 1002: wrong or stale); a fresh challenge went to the HTTP source: submit its token\n", s.where())
			default:
				open = append(open, s)
			}
		}
		sent = open
		if len(sent) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			deadline = time.Now()
		case <-time.After(200 * time.Millisecond):
		}
	}
	for _, s := range sent {
		fmt.Fprintf(env.Stderr, "%s: no verdict after %s: are workers running on this Redis? (status --batch %s)\n", s.where(), wait, batch)
	}
	fmt.Fprintf(env.Stdout, "batch %s: %s validated, %d rejected or without a verdict\n", batch, words.Plural(int64(validated), "token"), bad+len(sent))
	return bad + len(sent)
}

// dest is the submission's destination in batch.
func (s submission) dest(batch string) tasks.Dest {
	return tasks.Dest{BatchID: batch, Scope: s.row.Scope, ScopeID: s.row.ScopeID, DestinationConf: s.row.Conf.Raw, Job: s.job, Credential: s.credential}
}

// readSubmissions reads the tokens: a CSV file, or one destination from flags.
func readSubmissions(env Env, file, zone, account, conf, token, credential string) ([]submission, error) {
	if file == "" {
		if token == "-" {
			line, err := bufio.NewReader(env.Stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("read token from stdin: %w", err)
			}
			token = line
		}
		row, err := oneRow(zone, account, conf)
		if err != nil {
			return nil, err
		}
		tok, err := cloudflare.CleanToken(token)
		if err != nil {
			return nil, err
		}
		return []submission{{row: row, token: tok, credential: strings.TrimSpace(credential)}}, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", file, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	for _, need := range []string{"destination_conf", "token"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s: header needs zone_id,account_id,destination_conf,token; %s is missing", file, need)
		}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var subs []submission
	var problems []string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		row, err := oneRow(get(rec, "zone_id"), get(rec, "account_id"), get(rec, "destination_conf"))
		var job *tasks.JobSpec
		if err == nil && get(rec, "dataset") != "" {
			extra := map[string]string{}
			for _, c := range tasks.JobColumns {
				extra[c] = get(rec, c)
			}
			job, err = tasks.ParseJobSpec(extra)
		}
		if err == nil {
			var tok string
			if tok, err = cloudflare.CleanToken(get(rec, "token")); err == nil {
				subs = append(subs, submission{line: line, row: row, token: tok, job: job, credential: strings.TrimSpace(get(rec, "credential"))})
				continue
			}
		}
		problems = append(problems, fmt.Sprintf("line %d: %v", line, err))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s has invalid lines; nothing was submitted:\n%s", file, strings.Join(problems, "\n"))
	}
	return subs, nil
}

// oneRow checks one destination with the input reader's own rules.
func oneRow(zone, account, conf string) (input.Row, error) {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"zone_id", "account_id", "destination_conf"})
	w.Write([]string{zone, account, conf})
	w.Flush()
	row, err := input.NewReader(strings.NewReader(b.String()), input.Options{Format: input.CSV}).Next()
	var le *input.LineError
	if errors.As(err, &le) {
		return row, fmt.Errorf("%s: %w", le.Field, le.Err)
	}
	return row, err
}
