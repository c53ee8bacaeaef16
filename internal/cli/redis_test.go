package cli

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestNewRedisClient(t *testing.T) {
	t.Parallel()
	c, err := newRedisClient("redis-sentinel://:s3cret@h1:26379,h2:26379/mymaster/3")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*redis.Client); !ok {
		t.Fatalf("sentinel client is %T", c)
	}
	c.Close()
	for _, bad := range []string{"redis-sentinel://h1:26379", "redis-sentinel://h:1/m/x", "redis-cluster://h:6379", "http://x"} {
		if _, err := newRedisClient(bad); err == nil {
			t.Errorf("newRedisClient(%q) accepted", bad)
		}
	}
	if got := redactURL("redis://:s3cret@h:6379/0"); strings.Contains(got, "s3cret") {
		t.Errorf("redactURL = %q", got)
	}
}

// TestRedisPasswordMasked: the password of REDIS_URL or -redis never shows:
// not in -h (the flag's default), not in the usage after a flag error, not
// in a URL parse error, not when Redis does not answer.
func TestRedisPasswordMasked(t *testing.T) {
	t.Parallel()
	const pw = "Sup3rSecretPW"
	env := map[string]string{"REDIS_URL": "redis://default:" + pw + "@127.0.0.1:1/0", "CLOUDFLARE_API_TOKEN": "tok"}
	cases := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"help", env, []string{"status", "-h"}},
		{"help of worker", env, []string{"worker", "-h"}},
		{"flag error", env, []string{"report", "--no-such-flag"}},
		{"bad flag value", env, []string{"enqueue", "--max-retry", "x", "f.csv"}},
		{"parse error", nil, []string{"status", "--redis", "redis://user:" + pw + "@host:6379/0%zz"}},
		{"parse error of REDIS_URL", map[string]string{"REDIS_URL": "redis://user:" + pw + "@host:6379/%zz"}, []string{"events"}},
		{"escaped password", nil, []string{"status", "--redis", "redis://user:" + pw + "%2F@host:6379/%zz"}},
		{"does not answer", env, []string{"status"}},
	}
	for _, c := range cases {
		code, out, stderr := runEnv(t, c.env, "", c.args...)
		if code == 0 && c.args[len(c.args)-1] != "-h" {
			t.Errorf("%s: exit 0", c.name)
		}
		if strings.Contains(out+stderr, pw) {
			t.Errorf("%s: the Redis password in the output:\n%s%s", c.name, out, stderr)
		}
		if c.name == "help" && !strings.Contains(stderr, "redis://REDACTED@127.0.0.1:1/0") {
			t.Errorf("help does not show the masked default:\n%s", stderr)
		}
	}
}

// TestPersistenceWarning: a Redis with neither an append-only file nor
// snapshots is named at start; one that persists either way, or whose
// configuration cannot be read, is not.
func TestPersistenceWarning(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  map[string]string
		warn bool
	}{
		{map[string]string{"appendonly": "no", "save": ""}, true},
		{map[string]string{"appendonly": "yes", "save": ""}, false},
		{map[string]string{"appendonly": "no", "save": "3600 1 300 100"}, false},
		{map[string]string{}, false},
	} {
		if got := persistsNothing(c.cfg); (got != "") != c.warn {
			t.Errorf("persistsNothing(%v) = %q, want a warning: %v", c.cfg, got, c.warn)
		}
	}
}
