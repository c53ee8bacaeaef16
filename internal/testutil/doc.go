// Package testutil gives tests their own Redis: a database of the real
// Redis server (REDIS_TEST_URL, default redis://127.0.0.1:6379) leased for
// the test's lifetime so that packages and tests run in parallel without
// sharing keys, or an embedded miniredis whose clock follows the wall clock.
package testutil
