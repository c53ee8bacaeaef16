package testutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/embedded"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
)

// RedisURL is the real Redis tests use.
func RedisURL() string {
	if u := os.Getenv("REDIS_TEST_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// dbs is how many databases tests lease (1..dbs-1; 0 holds the leases).
const dbs = 16

// Redis returns a client on a database of the real Redis that no other test
// uses until t ends; the database is flushed before and after. A test that
// needs Redis fails, not skips, when none answers: CI starts one.
func Redis(t testing.TB) (*redis.Client, *redis.Options) {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("REDIS_TEST_URL: %v", err)
	}
	ctx := context.Background()
	admin := redis.NewClient(opt)
	t.Cleanup(func() { admin.Close() })
	if err := admin.Ping(ctx).Err(); err != nil {
		t.Fatalf("real Redis at %s does not answer (start one, e.g. redis-server --daemonize yes): %v", opt.Addr, err)
	}
	owner := fmt.Sprintf("%d:%s", os.Getpid(), t.Name())
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for db := 1; db < dbs; db++ {
			key := keys.DBLease(db)
			ok, err := admin.SetNX(ctx, key, owner, dbLeaseTTL).Result()
			if err != nil {
				t.Fatalf("lease test database: %v", err)
			}
			if !ok {
				continue
			}
			o := *opt
			o.DB = db
			c := redis.NewClient(&o)
			if err := c.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("flush test database %d: %v", db, err)
			}
			stop := renewLease(admin, key, owner)
			t.Cleanup(func() {
				stop()
				c.FlushDB(context.Background())
				c.Close()
				admin.Del(context.Background(), key)
			})
			return c, &o
		}
		if time.Now().After(deadline) {
			t.Fatalf("no free test database on %s after 2m", opt.Addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dbLeaseTTL is how long a test database's lease outlives its test's last
// renewal (a test killed with its process leaves it that long).
const dbLeaseTTL = 10 * time.Minute

// renewLeaseScript extends the lease KEYS[1] by ARGV[2] ms while ARGV[1]
// holds it.
var renewLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// renewLease keeps owner's lease key alive every minute until the returned
// stop is called: a test that runs longer than dbLeaseTTL (one that hangs
// until its own bound) would otherwise have its database leased to another
// test, and flushed under it.
func renewLease(admin *redis.Client, key, owner string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				renewLeaseScript.Run(context.Background(), admin, []string{key}, owner, dbLeaseTTL.Milliseconds())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// Mini returns a client on a fresh embedded Redis whose clock follows the
// wall clock, so that keys with a TTL (asynq's leases and locks) expire.
func Mini(t testing.TB) (*redis.Client, *embedded.Redis) {
	t.Helper()
	mr, err := embedded.Start()
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { c.Close(); mr.Close() })
	return c, mr
}

// DumpRedis returns every key of rdb's database with its value, whatever
// its type, as text: for scanning Redis for secrets at rest. A key deleted
// between the scan and its read (workers still running) is left out: it
// holds nothing. A key of a type it cannot read fails the test.
func DumpRedis(t testing.TB, rdb redis.UniversalClient) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := rdb.Type(ctx, k).Result()
		if err != nil {
			t.Fatalf("type of %s: %v", k, err)
		}
		var v any
		switch typ {
		case "none":
			continue // deleted since the scan: it holds nothing now
		case "string":
			if v, err = rdb.Get(ctx, k).Result(); errors.Is(err, redis.Nil) {
				continue // deleted since the scan
			}
		case "hash":
			v, err = rdb.HGetAll(ctx, k).Result()
		case "list":
			v, err = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = rdb.SMembers(ctx, k).Result()
		case "zset":
			v, err = rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = rdb.XRange(ctx, k, "-", "+").Result()
		default:
			t.Fatalf("key %s of type %s: the dump cannot read it", k, typ)
		}
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		fmt.Fprintf(&b, "%s %s %v\n", typ, k, v)
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return b.String()
}
