package events

import "time"

// BatchStatus counts a batch's destinations per state.
type BatchStatus struct {
	ID        string
	Source    string
	CreatedAt time.Time
	Total     int64
	Counts    map[State]int64
}

// Done is the number of destinations in a terminal state.
func (b BatchStatus) Done() int64 {
	var n int64
	for _, s := range TerminalStates() {
		n += b.Counts[s]
	}
	return n
}
