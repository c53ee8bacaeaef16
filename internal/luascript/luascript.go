package luascript

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Script is a Lua script that keeps its source, so that Then can run it
// after another. Alone it runs as the redis.Script it embeds.
type Script struct {
	*redis.Script
	src string
}

// New returns the script of src.
func New(src string) *Script { return &Script{Script: redis.NewScript(src), src: src} }

// Call is one run of a script: its keys and arguments.
type Call struct {
	Script *Script
	Keys   []string
	Args   []any
}

// chained keeps the script of each pair Then ran, by [first, second].
var chained sync.Map

// chainSource runs first, then second, each as a function of its own KEYS
// and ARGV: ARGV[1] is the number of keys of first, ARGV[2] the number of
// its arguments; its keys and arguments come first. An error reply of
// first (redis.error_reply) is the run's, before second starts. A result
// of nil (no return) is returned as false, so that the pair keeps its two
// places.
const chainSource = `local function first(KEYS, ARGV)
%s
end
local function second(KEYS, ARGV)
%s
end
local nk, na = tonumber(ARGV[1]), tonumber(ARGV[2])
local k1, a1, k2, a2 = {}, {}, {}, {}
for i = 1, #KEYS do
  if i <= nk then k1[#k1 + 1] = KEYS[i] else k2[#k2 + 1] = KEYS[i] end
end
for i = 3, #ARGV do
  if i <= 2 + na then a1[#a1 + 1] = ARGV[i] else a2[#a2 + 1] = ARGV[i] end
end
local r1 = first(k1, a1)
if type(r1) == 'table' and r1.err then return r1 end
if r1 == nil then r1 = false end
local r2 = second(k2, a2)
if type(r2) == 'table' and r2.err then return r2 end
if r2 == nil then r2 = false end
return {r1, r2}
`

func chain(first, second *Script) *redis.Script {
	key := [2]*Script{first, second}
	if s, ok := chained.Load(key); ok {
		return s.(*redis.Script)
	}
	s, _ := chained.LoadOrStore(key, redis.NewScript(fmt.Sprintf(chainSource, first.src, second.src)))
	return s.(*redis.Script)
}

// Then runs first, then second, in one script run: one round trip, with
// nothing else run between them. It returns each one's result (a nil
// result as nil). An error of first (raised or replied) ends the run
// before second starts: what first wrote until then stands, as with any
// script, and second does nothing.
func Then(ctx context.Context, c redis.Scripter, first, second Call) (res1, res2 any, err error) {
	keys := make([]string, 0, len(first.Keys)+len(second.Keys))
	keys = append(append(keys, first.Keys...), second.Keys...)
	args := make([]any, 0, 2+len(first.Args)+len(second.Args))
	args = append(args, len(first.Keys), len(first.Args))
	args = append(append(args, first.Args...), second.Args...)
	res, err := chain(first.Script, second.Script).Run(ctx, c, keys, args...).Slice()
	if err != nil {
		return nil, nil, err
	}
	if len(res) != 2 {
		return nil, nil, fmt.Errorf("chained scripts: %d results, want 2", len(res))
	}
	return res[0], res[1], nil
}
