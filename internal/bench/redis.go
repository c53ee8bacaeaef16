package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/embedded"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/producer"
)

// runner carries one bench run.
type runner struct {
	cfg Config
	env Env
	rep *Report
	log *slog.Logger
	dir string

	opts  *redis.Options // of the measured database
	url   string         // redis://addr/db, for worker processes
	mini  *embedded.Redis
	admin *redis.Client // the measured database, for flushing and counters
	// batches is the producer client on admin that follows the batches.
	batches  *producer.Client
	leaseKey string
	leaser   *redis.Client
	stopKeep chan struct{}
}

// leaseTTL bounds the database lease if the bench dies; it is renewed.
const leaseTTL = 2 * time.Minute

func (r *runner) connect(ctx context.Context) error {
	if r.cfg.RedisURL == "" {
		mr, err := embedded.Start()
		if err != nil {
			return err
		}
		r.mini = mr
		r.opts = &redis.Options{Addr: mr.Addr()}
	} else {
		opt, err := redis.ParseURL(r.cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("-redis: %w", err)
		}
		if r.cfg.RedisDB >= 0 {
			opt.DB = r.cfg.RedisDB
		}
		if opt.DB == 0 {
			return errors.New("the bench flushes its Redis database: use a dedicated one, not 0 (--redis-db)")
		}
		r.opts = opt
	}
	r.url = fmt.Sprintf("redis://%s/%d", r.opts.Addr, r.opts.DB)
	if r.opts.Password != "" {
		r.url = fmt.Sprintf("redis://%s:%s@%s/%d", r.opts.Username, r.opts.Password, r.opts.Addr, r.opts.DB)
	}
	admin := *r.opts
	r.admin = redis.NewClient(&admin)
	var err error
	if r.batches, err = producer.NewClient(r.admin, nil); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.admin.Ping(pctx).Err(); err != nil {
		return fmt.Errorf("redis at %s does not answer: %w", r.opts.Addr, err)
	}
	if r.mini == nil && !r.cfg.NoLease {
		if err := r.lease(ctx); err != nil {
			return err
		}
	}
	if r.mini == nil {
		if err := r.claim(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(r.env.Stderr, "bench: using database %d of the Redis at %s (flushed before and between scenarios, and after)\n", r.opts.DB, r.opts.Addr)
	return nil
}

// claim refuses a database with keys the bench did not write (a database
// holding other keys is someone's data; one left over by a bench that died
// holds its marker, keys.BenchMarker) unless Config.Flush, then marks it.
func (r *runner) claim(ctx context.Context) error {
	n, err := r.admin.DBSize(ctx).Result()
	if err != nil {
		return fmt.Errorf("size of database %d: %w", r.opts.DB, err)
	}
	if n > 0 && !r.cfg.Flush && r.admin.Exists(ctx, keys.BenchMarker).Val() == 0 {
		return fmt.Errorf("database %d of the Redis at %s holds %d keys the bench did not write, and the bench flushes its database: pick an empty one with --redis-db, or pass --flush to empty it", r.opts.DB, r.opts.Addr, n)
	}
	return r.admin.Set(ctx, keys.BenchMarker, os.Getpid(), 0).Err()
}

// lease takes the test suite's lease on the database (internal/testutil:
// keys.DBLease, in database 0), so that a test running on
// the same Redis does not get the database the bench flushes, and waits up
// to two minutes for it.
func (r *runner) lease(ctx context.Context) error {
	o := *r.opts
	o.DB = 0
	r.leaser = redis.NewClient(&o)
	r.leaseKey = keys.DBLease(r.opts.DB)
	owner := fmt.Sprintf("bench:%d", os.Getpid())
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, err := r.leaser.SetNX(ctx, r.leaseKey, owner, leaseTTL).Result()
		if err != nil {
			return fmt.Errorf("lease database %d: %w", r.opts.DB, err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("database %d is leased by %q (key %s in database 0) for over 2m: pick another with --redis-db", r.opts.DB,
				r.leaser.Get(ctx, r.leaseKey).Val(), r.leaseKey)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	r.stopKeep = make(chan struct{})
	go func() {
		t := time.NewTicker(leaseTTL / 4)
		defer t.Stop()
		for {
			select {
			case <-r.stopKeep:
				return
			case <-t.C:
				r.leaser.Expire(context.Background(), r.leaseKey, leaseTTL)
			}
		}
	}()
	return nil
}

func (r *runner) close() {
	if r.admin != nil {
		if r.mini == nil {
			r.admin.FlushDB(context.Background())
		}
		r.admin.Close()
	}
	if r.stopKeep != nil {
		close(r.stopKeep)
		r.leaser.Del(context.Background(), r.leaseKey)
	}
	if r.leaser != nil {
		r.leaser.Close()
	}
	if r.mini != nil {
		r.mini.Close()
	}
}

// flush empties the measured database.
func (r *runner) flush(ctx context.Context) error {
	if err := r.admin.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("flush database %d: %w", r.opts.DB, err)
	}
	if r.mini == nil {
		return r.admin.Set(ctx, keys.BenchMarker, os.Getpid(), 0).Err()
	}
	return nil
}

// newClient returns a new client on the measured database that counts the
// commands it sends.
func (r *runner) newClient() (*redis.Client, *counter) { return r.newClientProto(false) }

// newClientProto is newClient, with RESP2 instead of go-redis's default
// RESP3 when resp2 is set.
func (r *runner) newClientProto(resp2 bool) (*redis.Client, *counter) {
	o := *r.opts
	if resp2 {
		o.Protocol = 2
	}
	c := redis.NewClient(&o)
	n := &counter{}
	c.AddHook(n)
	return c, n
}

// counter is a go-redis hook that counts commands and round trips: what
// this process sends, exactly, whoever else uses the server.
type counter struct {
	cmds, trips atomic.Int64
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.cmds.Add(1)
		c.trips.Add(1)
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.cmds.Add(int64(len(cmds)))
		c.trips.Add(1)
		return next(ctx, cmds)
	}
}

// snapshot reads the counter.
func (c *counter) snapshot() ClientCount {
	return ClientCount{Commands: c.cmds.Load(), RoundTrips: c.trips.Load()}
}

// ClientCount is what one process's Redis clients sent: commands, and the
// round trips they took (a pipeline is one).
type ClientCount struct {
	Commands   int64 `json:"commands"`
	RoundTrips int64 `json:"round_trips"`
}

func (a ClientCount) sub(b ClientCount) ClientCount {
	return ClientCount{Commands: a.Commands - b.Commands, RoundTrips: a.RoundTrips - b.RoundTrips}
}

// serverStats are the server-wide counters of INFO.
type serverStats struct {
	ok       bool
	calls    map[string]int64 // commandstats calls per command, including those run by scripts
	netIn    int64
	netOut   int64
	usedMem  int64
	clients  int64
	totalCmd int64
	cpu      float64 // used_cpu_sys + used_cpu_user, seconds
}

// serverSnapshot reads INFO commandstats, stats, memory and clients. On
// the embedded Redis it returns ok=false.
func (r *runner) serverSnapshot(ctx context.Context) serverStats {
	if r.mini != nil {
		return serverStats{}
	}
	info, err := r.admin.Info(ctx, "commandstats", "stats", "memory", "clients", "cpu").Result()
	if err != nil {
		return serverStats{}
	}
	s := serverStats{ok: true, calls: map[string]int64{}}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		num := func() int64 { n, _ := strconv.ParseInt(v, 10, 64); return n }
		switch {
		case strings.HasPrefix(k, "cmdstat_"):
			for _, f := range strings.Split(v, ",") {
				if c, ok := strings.CutPrefix(f, "calls="); ok {
					n, _ := strconv.ParseInt(c, 10, 64)
					s.calls[strings.TrimPrefix(k, "cmdstat_")] = n
				}
			}
		case k == "total_net_input_bytes":
			s.netIn = num()
		case k == "total_net_output_bytes":
			s.netOut = num()
		case k == "used_memory":
			s.usedMem = num()
		case k == "connected_clients":
			s.clients = num()
		case k == "total_commands_processed":
			s.totalCmd = num()
		case k == "used_cpu_sys", k == "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			s.cpu += f
		}
	}
	return s
}

// ServerDelta is what the Redis server did between two snapshots, from
// its server-wide INFO counters (other clients' traffic included).
type ServerDelta struct {
	Available bool `json:"available"`
	// Commands counts every command the server ran, those run inside Lua
	// scripts included (INFO commandstats).
	Commands int64 `json:"commands"`
	// Processed is total_commands_processed: commands received from
	// clients (a script call counts once).
	Processed int64            `json:"processed"`
	NetIn     int64            `json:"net_in_bytes"`
	NetOut    int64            `json:"net_out_bytes"`
	Top       map[string]int64 `json:"top_commands,omitempty"`
	// CPUSeconds is the Redis server's CPU time (INFO cpu).
	CPUSeconds float64 `json:"cpu_seconds"`
}

func delta(before, after serverStats) ServerDelta {
	if !before.ok || !after.ok {
		return ServerDelta{}
	}
	d := ServerDelta{Available: true, NetIn: after.netIn - before.netIn, NetOut: after.netOut - before.netOut,
		Processed: after.totalCmd - before.totalCmd, Top: map[string]int64{}, CPUSeconds: after.cpu - before.cpu}
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range after.calls {
		n := v - before.calls[k]
		if n > 0 {
			d.Commands += n
			all = append(all, kv{k, n})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	for i, e := range all {
		if i == 12 {
			break
		}
		d.Top[e.k] = e.v
	}
	return d
}

// Memory is the memory the measured database's keys take (MEMORY USAGE of
// every key), by kind of key.
type Memory struct {
	Available bool             `json:"available"`
	Keys      int64            `json:"keys"`
	Bytes     int64            `json:"bytes"`
	ByKind    map[string]int64 `json:"bytes_by_kind,omitempty"`
	KeysBy    map[string]int64 `json:"keys_by_kind,omitempty"`
}

// keyKind groups keys: asynq's task hashes and queue structures, the
// destination state, the events stream, the batch and the budget.
func keyKind(k string) string {
	switch {
	case strings.Contains(k, "}:t:"):
		return "asynq task hashes"
	case strings.HasSuffix(k, ":completed"):
		return "asynq completed set"
	case strings.HasSuffix(k, ":pending"), strings.HasSuffix(k, ":scheduled"), strings.HasSuffix(k, ":retry"),
		strings.HasSuffix(k, ":active"), strings.HasSuffix(k, ":lease"), strings.HasSuffix(k, ":archived"):
		return "asynq queues"
	case strings.HasPrefix(k, "asynq:"):
		return "asynq other"
	case strings.Contains(k, ":dest:"):
		return "destination state"
	case strings.HasSuffix(k, ":events"):
		return "events stream"
	case strings.Contains(k, ":batch"):
		return "batch"
	case strings.Contains(k, "budget"):
		return "api budget"
	}
	return "other"
}

// memory sums MEMORY USAGE over every key of the measured database.
func (r *runner) memory(ctx context.Context) Memory {
	if r.mini != nil {
		return Memory{}
	}
	m := Memory{Available: true, ByKind: map[string]int64{}, KeysBy: map[string]int64{}}
	iter := r.admin.Scan(ctx, 0, "*", 2000).Iterator()
	var keys []string
	flush := func() bool {
		if len(keys) == 0 {
			return true
		}
		pipe := r.admin.Pipeline()
		cmds := make([]*redis.IntCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.MemoryUsage(ctx, k)
		}
		_, _ = pipe.Exec(ctx)
		for i, c := range cmds {
			n, err := c.Result()
			if err != nil {
				if errors.Is(err, redis.Nil) {
					continue // expired meanwhile
				}
				m.Available = false
				return false
			}
			kind := keyKind(keys[i])
			m.Keys++
			m.Bytes += n
			m.ByKind[kind] += n
			m.KeysBy[kind]++
		}
		keys = keys[:0]
		return true
	}
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 && !flush() {
			return m
		}
	}
	if iter.Err() != nil {
		return Memory{}
	}
	flush()
	return m
}

// redisInfo describes the measured Redis.
func (r *runner) redisInfo(ctx context.Context) RedisInfo {
	ri := RedisInfo{Addr: r.opts.Addr, DB: r.opts.DB}
	if r.mini != nil {
		ri.Embedded = true
		ri.Version = "embedded (miniredis)"
		return ri
	}
	ri.Flushed = true
	ri.Leased = r.leaseKey
	info, err := r.admin.Info(ctx, "server", "persistence").Result()
	if err != nil {
		return ri
	}
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch k {
		case "redis_version":
			ri.Version = v
		case "aof_enabled":
			ri.AOF = v == "1"
		}
	}
	if save, err := r.admin.ConfigGet(ctx, "save").Result(); err == nil {
		ri.Save = save["save"]
	}
	return ri
}
