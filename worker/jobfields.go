package worker

import (
	"context"
	"encoding/json"
	"slices"
	"sync"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// fieldCache keeps each dataset's field names, per credential and scope
// kind, for the jobs whose row gives no output_options: a batch asks
// Cloudflare once per dataset, not once per row. The fields of a dataset
// are the same for every zone (or every account); an entry is kept for the
// process's life, which a new release of a dataset's fields outlives only
// until the worker restarts.
type fieldCache struct {
	mu sync.Mutex
	m  map[fieldKey][]string
}

type fieldKey struct {
	credential, scope, dataset string
}

func newFieldCache() *fieldCache { return &fieldCache{m: make(map[fieldKey][]string)} }

// defaultOptions returns the output_options of a job whose row gives none:
// every field of the dataset, sorted, as field_names (Cloudflare has no
// "all fields" option, and a job created without field names pushes
// Cloudflare's few defaults only). list asks Cloudflare, after the budget.
func (c *fieldCache) defaultOptions(ctx context.Context, credential string, t cloudflare.Target, dataset string,
	list func(ctx context.Context) (map[string]string, error)) (json.RawMessage, error) {
	k := fieldKey{credential: credential, scope: t.Scope, dataset: dataset}
	c.mu.Lock()
	names, ok := c.m[k]
	c.mu.Unlock()
	if !ok {
		fields, err := list(ctx)
		if err != nil {
			return nil, err
		}
		names = make([]string, 0, len(fields))
		for n := range fields {
			names = append(names, n)
		}
		slices.Sort(names)
		c.mu.Lock()
		c.m[k] = names
		c.mu.Unlock()
	}
	return json.Marshal(map[string][]string{"field_names": names})
}
