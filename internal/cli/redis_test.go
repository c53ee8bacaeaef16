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
