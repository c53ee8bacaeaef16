package luascript_test

import (
	"context"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/luascript"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// set writes ARGV[1] to KEYS[1] and returns its keys and arguments.
var set = luascript.New(`
redis.call('SET', KEYS[1], ARGV[1])
return {#KEYS, #ARGV, ARGV[#ARGV]}
`)

// get returns what KEYS[1] holds, its arguments counted.
var get = luascript.New(`
return {redis.call('GET', KEYS[1]), #KEYS, #ARGV}
`)

// TestThenRunsBothInOrder: the second script sees what the first wrote,
// each sees only its own keys and arguments, and each result comes back.
func TestThenRunsBothInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := testutil.Redis(t)
	r1, r2, err := luascript.Then(ctx, rdb,
		luascript.Call{Script: set, Keys: []string{"k"}, Args: []any{"v", 7}},
		luascript.Call{Script: get, Keys: []string{"k"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := r1.([]any); !ok || len(got) != 3 || got[0] != int64(1) || got[1] != int64(2) || got[2] != "7" {
		t.Errorf("first's result = %#v, want [1 2 7]", r1)
	}
	if got, ok := r2.([]any); !ok || len(got) != 3 || got[0] != "v" || got[1] != int64(1) || got[2] != int64(0) {
		t.Errorf("second's result = %#v, want [v 1 0]", r2)
	}
	// Alone, each runs as before.
	if v, err := get.Run(ctx, rdb, []string{"k"}).Slice(); err != nil || v[0] != "v" {
		t.Errorf("get alone = %v, %v", v, err)
	}
}

// TestThenStopsAtAnError: an error of the first script ends the run: the
// second does not run, and the error comes back.
func TestThenStopsAtAnError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := testutil.Redis(t)
	fail := luascript.New(`return redis.error_reply('refused')`)
	boom := luascript.New(`error('boom')`)
	for _, first := range []*luascript.Script{fail, boom} {
		_, _, err := luascript.Then(ctx, rdb, luascript.Call{Script: first},
			luascript.Call{Script: set, Keys: []string{"after"}, Args: []any{"x"}})
		if err == nil {
			t.Fatal("no error")
		}
		if n := rdb.Exists(ctx, "after").Val(); n != 0 {
			t.Fatal("the second script ran after the first's error")
		}
	}
}

// TestThenNoResult: a script that returns nothing keeps its place.
func TestThenNoResult(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	none := luascript.New(`redis.call('SET', KEYS[1], '1')`)
	r1, r2, err := luascript.Then(context.Background(), rdb, luascript.Call{Script: none, Keys: []string{"a"}},
		luascript.Call{Script: get, Keys: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	if r1 != nil {
		t.Errorf("first's result = %#v, want nil", r1)
	}
	if got, ok := r2.([]any); !ok || got[0] != "1" {
		t.Errorf("second's result = %#v", r2)
	}
}
