package cli

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/embedded"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
)

// connectRedis returns a client for the Redis at url, once it answers. A
// malformed URL or a Redis that does not answer is a configuration error
// (exit 2): the command has started nothing yet.
func connectRedis(ctx context.Context, url string) (redis.UniversalClient, func(), error) {
	rdb, err := newRedisClient(url)
	if err != nil {
		return nil, nil, notStarted(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, nil, notStarted(fmt.Errorf("redis at %s does not answer: %s", redactURL(url), maskRedisURL(err.Error(), url)))
	}
	return rdb, func() { rdb.Close() }, nil
}

// embeddedRedis starts a Redis in this process (demo, run): it lives until
// the returned close function is called, and its state with it.
func embeddedRedis() (redis.UniversalClient, func(), error) {
	mr, err := embedded.Start()
	if err != nil {
		return nil, nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return rdb, func() { rdb.Close(); mr.Close() }, nil
}

// newRedisClient parses a Redis URL: redis:// and rediss:// for one node,
// redis-sentinel://[:password@]host:port[,host:port]/master[/db] for
// Sentinel failover. Redis Cluster is refused: a destination's state change
// and its event are one Lua script over the batch's keys and the event
// stream, which Cluster would place in different slots.
func newRedisClient(url string) (redis.UniversalClient, error) {
	switch {
	case strings.HasPrefix(url, "redis-cluster://"):
		return nil, fmt.Errorf("-redis: Redis Cluster is not supported (state and events are written atomically across keys that Cluster would split); use one node or Sentinel (redis-sentinel://)")
	case strings.HasPrefix(url, "redis-sentinel://"):
		return parseSentinel(strings.TrimPrefix(url, "redis-sentinel://"))
	default:
		opt, err := redis.ParseURL(url)
		if err != nil {
			// url.Parse quotes the whole URL, password and all.
			return nil, fmt.Errorf("-redis: %s", maskRedisURL(err.Error(), url))
		}
		return redis.NewClient(opt), nil
	}
}

func parseSentinel(rest string) (redis.UniversalClient, error) {
	var password string
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		password = strings.TrimPrefix(rest[:at], ":")
		if i := strings.Index(password, ":"); i >= 0 {
			password = password[i+1:]
		}
		rest = rest[at+1:]
	}
	hosts, path, _ := strings.Cut(rest, "/")
	master, dbs, _ := strings.Cut(path, "/")
	if hosts == "" || master == "" {
		return nil, fmt.Errorf("-redis: sentinel URL needs hosts and a master name: redis-sentinel://host:26379[,host:26379]/mymaster[/db]")
	}
	db := 0
	if dbs != "" {
		if _, err := fmt.Sscanf(dbs, "%d", &db); err != nil {
			return nil, fmt.Errorf("-redis: sentinel db %q is not a number", dbs)
		}
	}
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: master, SentinelAddrs: strings.Split(hosts, ","), Password: password, DB: db,
	}), nil
}

// redisURLValue is the -redis flag: it shows the URL (as its default in
// -h and in the usage printed after a flag error) with the password masked.
type redisURLValue struct{ p *string }

func (v redisURLValue) String() string {
	if v.p == nil {
		return ""
	}
	return redactURL(*v.p)
}

func (v redisURLValue) Set(s string) error { *v.p = s; return nil }

// maskRedisURL masks in s the credentials of the Redis URL u, raw or
// unescaped, wherever they appear, and any other URL's userinfo.
func maskRedisURL(s, u string) string {
	_, rest, ok := strings.Cut(u, "://")
	at := strings.LastIndex(rest, "@")
	if !ok || at < 0 {
		return redact.String(s)
	}
	info := rest[:at]
	secrets := []string{info}
	if _, pw, ok := strings.Cut(info, ":"); ok && pw != "" {
		secrets = append(secrets, pw)
		if dec, err := url.PathUnescape(pw); err == nil && dec != pw {
			secrets = append(secrets, dec)
		}
	}
	return redact.Values(redact.String(s), secrets...)
}

// redactURL hides a password in a Redis URL.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = "REDACTED@" + rest[at+1:]
	}
	return scheme + "://" + rest
}

// persistenceWarning is the warning for a Redis that keeps nothing across
// a restart (no append-only file, no snapshots), or "" for one that does,
// or whose configuration cannot be read (CONFIG is often disabled on a
// managed Redis, which persists).
func persistenceWarning(ctx context.Context, rdb redis.UniversalClient) string {
	cfg := map[string]string{}
	for _, k := range []string{"appendonly", "save"} {
		m, err := rdb.ConfigGet(ctx, k).Result()
		if err != nil {
			return ""
		}
		maps.Copy(cfg, m)
	}
	return persistsNothing(cfg)
}

// persistsNothing is persistenceWarning of a Redis's CONFIG GET answer.
func persistsNothing(cfg map[string]string) string {
	aof, okA := cfg["appendonly"]
	save, okS := cfg["save"]
	if !okA || !okS || aof != "no" || strings.TrimSpace(save) != "" {
		return ""
	}
	return "this Redis persists nothing (appendonly no, save \"\"): a restart loses every batch, its states and queued tasks, and re-enqueueing the file then challenges every destination again; run it with --appendonly yes (deploy/compose.yaml does)"
}
