package cloudflare

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// EndpointFields is GET .../logpush/datasets/{dataset}/fields.
const EndpointFields = "fields"

// Fields returns the fields of a dataset, name to description: GET
// .../logpush/datasets/{dataset}/fields. Cloudflare has no "all fields"
// option: a job lists the fields it pushes in output_options.field_names.
func (c *Client) Fields(ctx context.Context, t Target, dataset string) (map[string]string, error) {
	path, err := t.path()
	if err == nil && (dataset == "" || len(dataset) > MaxDataset || !OnlyChars(dataset, "_-")) {
		err = fmt.Errorf("dataset %q is not 1 to %d characters of [a-zA-Z0-9_-]", truncate(dataset, 64), MaxDataset)
	}
	if err != nil {
		return nil, invalidRequest(EndpointFields, err)
	}
	cl := call{endpoint: EndpointFields, method: http.MethodGet, path: path + "/logpush/datasets/" + url.PathEscape(dataset) + "/fields"}
	status, raw, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	var fields map[string]string
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, garbage(cl.endpoint, status, "result is not an object of field names", nil)
	}
	return fields, nil
}
