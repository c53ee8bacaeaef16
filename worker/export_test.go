package worker

// The handlers' construction, for the tests that run them on fakes:
// embedding programs build a worker with New.
type (
	API  = cloudflareAPI
	Deps = deps
)

var (
	NewHandlers = newHandlers
	PauseQueue  = pauseQueue
)
