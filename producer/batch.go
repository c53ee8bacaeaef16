package producer

import (
	"context"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
)

// BatchStatus reads the counters of batch id: how many of its destinations
// are in each state. A batch is done when BatchStatus.Done() equals Total.
func (p *Client) BatchStatus(ctx context.Context, id string) (events.BatchStatus, error) {
	return p.store.Batch(ctx, id)
}

// Events returns up to count events of the stream after stream id after
// ("0" for the beginning, "$" for only new ones), oldest first, waiting up
// to block for the first one when block > 0. Each carries its stream id,
// for the next call's after.
func (p *Client) Events(ctx context.Context, after string, count int64, block time.Duration) ([]ledger.Entry, error) {
	return p.store.Read(ctx, after, count, block)
}
