package budget

import (
	"context"
	"fmt"
	"time"
)

// cooldownLeft returns how long the shared cooldown has left and the reason its
// latest extension gave; 0 and "" when there is none.
func (b *Budget) cooldownLeft(ctx context.Context) (remaining time.Duration, reason string, err error) {
	remaining, reason, err = b.readCooldown(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("api budget cooldown: %w", err)
	}
	return remaining, reason, nil
}
