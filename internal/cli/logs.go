package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/logpush-onboard/logpush-onboard/credentials"
)

// logHandler is the handler of every command's log at lvl on w: text, or
// JSON lines whose durations are seconds, as in the events, rather than
// slog's nanoseconds;
// asynq's lines about a Redis it cannot reach are kept at debug
// (asynqQuiet).
func logHandler(w io.Writer, lvl slog.Level, asJSON bool) slog.Handler {
	if !asJSON {
		return asynqQuiet{Handler: slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})}
	}
	return asynqQuiet{Handler: slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			a.Value = slog.Float64Value(a.Value.Duration().Seconds())
		}
		return a
	}})}
}

func parseLevel(s string) (slog.Level, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(s)); err != nil {
		return lvl, fmt.Errorf("-log-level %q: want debug, info, warn or error", s)
	}
	return lvl, nil
}

// viewLog are the logging flags of the commands that draw a progress view
// (demo, run): the view counts retried calls and shows the latest
// failures, so the terminal gets only errors unless --log-level asks for
// more; --log-file keeps the full log.
type viewLog struct {
	level string
	json  bool
	file  string
}

func (v *viewLog) register(fs *flag.FlagSet, env Env) {
	fs.StringVar(&v.level, "log-level", env.Getenv("LOG_LEVEL"),
		"log on standard error from this level: debug, info, warn, error (default: errors only; with --log-file, info and up go to the file); env LOG_LEVEL")
	fs.BoolVar(&v.json, "log-json", env.Getenv("LOG_FORMAT") == "json", "log JSON lines instead of text; env LOG_FORMAT=json")
	fs.StringVar(&v.file, "log-file", "", "append the full log to this file (at --log-level, default info)")
}

// logger returns the log: into --log-file when given, else on standard
// error at --log-level, errors only by default. close closes the file.
func (v *viewLog) logger(env Env) (log *slog.Logger, close func(), err error) {
	lvl := slog.LevelError
	if v.file != "" {
		lvl = slog.LevelInfo
	}
	if strings.TrimSpace(v.level) != "" {
		if lvl, err = parseLevel(v.level); err != nil {
			return nil, nil, notStarted(err)
		}
	}
	if v.file == "" {
		return slog.New(logHandler(env.Stderr, lvl, v.json)), func() {}, nil
	}
	f, err := os.OpenFile(v.file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, notStarted(fmt.Errorf("-log-file: %w", err))
	}
	return slog.New(logHandler(f, lvl, v.json)), func() { f.Close() }, nil
}

// withCredentials is logger, then the credentials file of cf loaded with
// its warnings in that log; close closes the log.
func (v *viewLog) withCredentials(env Env, cf credentialsFlag) (log *slog.Logger, close func(), set *credentials.Set, err error) {
	if log, close, err = v.logger(env); err != nil {
		return nil, nil, nil, err
	}
	if set, err = cf.load(env, log); err != nil {
		close()
		return nil, nil, nil, err
	}
	return log, close, set, nil
}
