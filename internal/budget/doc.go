// Package budget is the Cloudflare API budget that every worker process of a
// fleet shares in Redis, one budget per credential.
//
// Cloudflare allows 1200 requests per 5 minutes per user (token) and, once
// that is exceeded, answers 429 to every call for a penalty period. Every
// handler calls [Budget.Wait] right before each API call (challenge,
// validate, later job creation), and any worker that still gets a 429 calls
// [Budget.Pause] with the Retry-After it was given: every worker's Wait then
// blocks until the shared cooldown passes.
//
// # Keys
//
// For Config{Prefix: p, Key: k} the budget uses three Redis keys, named by
// package keys (p is keys.BudgetPrefix unless set):
//
//	rate:<p><k>    the GCRA state (named, and laid out, as redis_rate does)
//	<p><k>:cooldown  the shared cooldown: value is the reason, PTTL the time left
//	<p><k>:limit   the rate every process of the budget uses, e.g. "1200/5m"
//
// and a Pacer a fourth, <p><k>:pace, the producers' next enqueue slot.
//
// The rate lives in Redis with the budget ([ClaimRate]): processes started
// with different rates on one budget would each spend the window at their own
// pace. A process that comes with another rate is refused, or overrides the
// shared rate for all; Wait's script reads the shared rate on every check, so
// running processes follow an override at their next check.
//
// Wait reads the cooldown and the shared rate and updates the GCRA state in one Lua script, so
// one check is one round trip (see Waiting). That script touches both keys,
// so they must live on one node: a single Redis or a Sentinel-managed one
// (the tool refuses Redis Cluster). The GCRA key keeps redis_rate's layout
// and arithmetic, so processes that still use redis_rate (a rolling upgrade)
// share the same budget. Both durations are measured by the Redis server's
// clock (TIME in the script, key expiry for the cooldown), never by a
// worker's clock, so worker clock skew does not matter.
//
// # Sizing: why the burst is small
//
// Cloudflare counts requests in a window of time. A token bucket whose burst
// is the whole budget (Limit) can grant Limit requests at once and then Limit
// more over the next Window: almost 2*Limit in one window. The budget
// therefore uses a small burst B and a steady rate r = Limit - B per Window.
//
// The limiter is GCRA exactly as redis_rate's allow_n implements it (Wait's
// script is a copy with cost 1), with emission interval T = Window/r and
// burst B. It keeps a theoretical arrival time TAT; a request at Redis time t
// is allowed iff max(TAT, t) + T - B*T <= t, i.e. (for B >= 1) iff
//
//	TAT <= t + (B-1)*T,  and then TAT := max(TAT, t) + T.
//
// Claim: if n requests are allowed at t_1 <= ... <= t_n, then
// t_n - t_1 >= (n-B)*T.
// Proof: after request 1, TAT >= t_1 + T; every later allowed request adds T
// to a value at least as large, so after request k, TAT >= t_1 + k*T. Request
// k+1 is allowed only if TAT <= t_{k+1} + (B-1)*T, hence
// t_{k+1} >= t_1 + (k-B+1)*T. Take k+1 = n.
//
// So a closed window [s, s+W] (both edges counted, the pessimistic reading of
// "per 5 minutes") holds n <= B + floor(W/T) grants, and a half-open window
// [s, s+W) holds n <= B + ceil(W/T) - 1. The bound is tight: B grants at s,
// then one at s+T, s+2T, ..., s+floor(W/T)*T. With W = Window, W/T = r exactly,
// so any window of length Window holds at most
//
//	B + r = B + (Limit - B) = Limit   (closed window; Limit-1 if half-open).
//
// Limit == 1 is the one case where r = Limit - B would be 0; it uses r = 1
// over a period of Window+1ms, so T > Window and floor(W/T) = 0.
//
// Throughput: starting from an idle budget, a run of length D gets at most
// B + floor(D/T) grants, a long-run rate of (Limit-B)/Window: with the
// default B = 12 for 1200/5m, 1188 per 5 minutes (99% of 1200, 3.96/s), so
// two calls per destination take ~1.01x the ideal 2*N*Window/Limit.
//
// Lateness. A waiter takes its slot a little after it opens (Redis round
// trip, timer slack: 1-3ms measured). With B = 1 the limiter then sets
// TAT := now + T, so every grant's lateness d is lost for good and the rate
// drops to 1/(T+d): 5-8% at 40/2s. With B >= 2 a backlogged budget keeps TAT
// ahead of now, and a grant up to (B-1)*T late still sets TAT := TAT + T:
// nothing is lost. The default burst is therefore 2 instead of 1 whenever
// the 1/Limit a second token costs is less than the 2ms/T that lateness
// would (see Config.Burst).
//
// Margin at the edge. The bound holds for grant times on the Redis clock. A
// request reaches Cloudflare later, after its own latency; if latencies differ
// by at most J, a Cloudflare window of length W holds grants from a Redis
// window of length W+J, so at most B + floor((W+J)/T) = Limit + floor(J/T):
// still Limit while J < T (Window/(Limit-B) = 252ms at the default; one more T
// if Cloudflare's window is half-open). Float rounding in the limiter script
// (seconds since 2017 stored as a Lua number) is microseconds, far below T.
// Operators who want more tolerance configure a lower Rate: a rate of
// Limit-h per Window tolerates J < (h+1)*T, e.g. 1150/5m tolerates ~13s.
//
// # Waiting
//
// Within one process only one Wait at a time talks to Redis for a budget:
// the others queue on a process-local gate (a channel, served in FIFO order)
// and the one holding it does the check-and-sleep loop. A check is the one
// script: during a cooldown it returns the cooldown's PTTL and reason and
// leaves the GCRA state alone; otherwise it takes a token, or returns the
// time until the next slot opens. The holder sleeps exactly that long and
// checks again (so a Pause that arrives meanwhile is honoured), and when
// granted passes the gate to the next waiter. A grant also says when the
// slot after it opens (TAT - (B-1)*T, or now while burst is left), and the
// next holder sleeps until then before its first check instead of asking
// for a token that is not there yet; a Pause made in this process drops that
// hint, so the next check sees the cooldown at once. A contended budget thus
// costs about one check per busy process per slot (every process's holder
// wakes for the slot and one wins) instead of one per waiting goroutine.
//
// Across processes waiters are not queued: whoever asks first after the slot
// opens wins, each process with one waiter in the race, so no process can
// crowd the others out by having more goroutines waiting. Config.MaxWait
// bounds how long one caller may lose, time queued on the gate included (and,
// with a *MaxWaitError carrying RetryIn, lets a handler snooze its task
// instead of holding a worker through a long cooldown). Every answer the
// holder gets from Redis tells the queued waiters of the same process the
// least time at which the budget could grant again (it is a lower bound for
// as long as it lasts: TAT only grows and a Pause never shortens the
// cooldown, unless someone deletes the keys by hand); a waiter whose MaxWait
// ends before that gives up at once with that time and the cooldown's
// reason, without asking Redis, and one whose MaxWait ends while it is still
// queued gives up then (RetryIn one emission interval). A Pause that lands after
// Wait returned but before the caller's request goes out cannot be honoured
// by anyone; at worst that request gets one more 429.
//
// A WaitInTurn with an accept func may pass a grant it would rather not use
// (a challenge whose request would fall where its file's date cannot tell
// it new) to a plain Wait blocked on the gate, which returns with it, and
// checks again for the next slot, up to four times. With none blocked, a
// WaitInTurn that slept for its slot gives the call back instead: a script
// sets TAT back by T, only where TAT is still what its grant stored (no
// other process was granted since), as if it had not asked. A grant stays
// one call, the holder's or the one it passed it to, made at once, or
// none: the bound above holds.
package budget
