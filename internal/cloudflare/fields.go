package cloudflare

import (
	"context"
	"encoding/json"
	"net/http"
)

// EndpointFields is GET .../logpush/datasets/{dataset}/fields, the fields of
// a dataset.
const EndpointFields = "fields"

// Fields returns the fields of the dataset, name to description, as the zone
// or account t sees them: GET {zones|accounts}/{id}/logpush/datasets/{dataset}/fields.
// Cloudflare has no "all fields" option: a job lists the fields it pushes
// in output_options.field_names, and these are the names it may list.
// A description Cloudflare answers null is "".
func (c *Client) Fields(ctx context.Context, t Target, dataset string) (map[string]string, error) {
	path, err := t.path()
	if err == nil && dataset == "" {
		err = &FieldError{Field: "dataset", Msg: "required"}
	}
	if err == nil {
		err = CheckDataset(dataset)
	}
	if err != nil {
		return nil, invalidRequest(EndpointFields, err)
	}
	cl := call{endpoint: EndpointFields, method: http.MethodGet, path: path + "/logpush/datasets/" + dataset + "/fields"}
	status, raw, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	var r map[string]*string
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, garbage(cl.endpoint, status, "result is not an object of field names", nil)
	}
	out := make(map[string]string, len(r))
	for name, desc := range r {
		if name == "" {
			continue
		}
		if desc != nil {
			out[name] = *desc
		} else {
			out[name] = ""
		}
	}
	return out, nil
}
