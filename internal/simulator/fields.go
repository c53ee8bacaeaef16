package simulator

import (
	"net/http"
	"slices"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// datasetFields are the fields the simulator lists per dataset: a subset of
// Cloudflare's log fields reference (developers.cloudflare.com/logs/reference/log-fields/),
// enough to pick and misspell names. firewall_events at account scope adds
// ZoneName (one account job covers every zone).
var datasetFields = map[string]map[string]string{
	"http_requests": {
		"CacheCacheStatus":       "Cache status",
		"CacheResponseBytes":     "Number of bytes returned by the cache",
		"ClientASN":              "Client AS number",
		"ClientCountry":          "2-letter ISO-3166 country code of the client IP address",
		"ClientDeviceType":       "Client device type",
		"ClientIP":               "IP address of the client",
		"ClientRequestHost":      "Host requested by the client",
		"ClientRequestMethod":    "HTTP method of client request",
		"ClientRequestPath":      "URI path requested by the client",
		"ClientRequestProtocol":  "HTTP protocol of client request",
		"ClientRequestReferer":   "HTTP request referrer",
		"ClientRequestURI":       "URI requested by the client",
		"ClientRequestUserAgent": "User agent reported by the client",
		"EdgeEndTimestamp":       "Timestamp at which the edge finished sending response to the client",
		"EdgeResponseBytes":      "Number of bytes returned by the edge to the client",
		"EdgeResponseStatus":     "HTTP status code returned by Cloudflare to the client",
		"EdgeStartTimestamp":     "Timestamp at which the edge received request from the client",
		"OriginIP":               "IP of the origin server",
		"OriginResponseStatus":   "Status returned by the upstream server",
		"RayID":                  "ID of the request",
		"SecurityAction":         "Action of the security rule that triggered a terminating action, if any",
		"ZoneName":               "The human-readable name of the zone",
	},
	"firewall_events": {
		"Action":             "The code of the first-class action the Cloudflare Firewall took on this request",
		"ClientASN":          "The ASN number of the visitor",
		"ClientCountry":      "Country from which request originated",
		"ClientIP":           "The visitor's IP address (IPv4 or IPv6)",
		"ClientRequestHost":  "The HTTP hostname requested by the visitor",
		"ClientRequestPath":  "The path requested by the visitor",
		"Datetime":           "The date and time the event occurred at the edge",
		"Description":        "The description of the rule triggered by this request",
		"EdgeResponseStatus": "HTTP response status code returned to browser",
		"RayID":              "The RayID of the request that issued the challenge/block",
		"RuleID":             "The Cloudflare security product-specific RuleID triggered by this request",
		"Source":             "The Cloudflare security product triggered by this request",
	},
	"dns_logs": {
		"ColoCode":     "IATA airport code of data center that received the request",
		"EDNSSubnet":   "IPv4 or IPv6 address information corresponding to the EDNS Client Subnet (ECS) forwarded by recursive resolvers",
		"QueryName":    "Name of the query that was sent",
		"QueryType":    "Integer value of query type",
		"ResponseCode": "Integer value of response code",
		"SourceIP":     "IP address of the client (IPv4 or IPv6)",
		"Timestamp":    "Timestamp at which the query occurred",
	},
	"audit_logs": {
		"ActionResult": "Whether the action was successful",
		"ActionType":   "Type of action taken",
		"ActorEmail":   "Email of the actor",
		"ActorID":      "Unique identifier of the actor in Cloudflare's system",
		"ActorIP":      "Physical network address of the actor",
		"ID":           "Unique identifier of an audit log",
		"NewValue":     "New value of the resource that was modified",
		"OldValue":     "Previous value of the resource before it was modified",
		"ResourceID":   "Unique identifier of the resource within Cloudflare's system",
		"ResourceType": "The type of resource that was modified",
		"When":         "When the change happened",
	},
	"gateway_dns": {
		"ColoCode":         "The name of the colo that received the DNS query",
		"Datetime":         "The date and time the corresponding DNS request was made",
		"DeviceID":         "UUID of the device where the DNS query originated from",
		"Email":            "Email used to authenticate the client",
		"QueryName":        "The query name",
		"QueryType":        "The type of DNS query",
		"ResolverDecision": "Result of the DNS query",
		"SrcIP":            "The source IP address making the DNS query",
	},
	"gateway_http": {
		"Action":        "Action performed by gateway on the HTTP request",
		"Datetime":      "The date and time the corresponding HTTP request was made",
		"DestinationIP": "Destination IP of the request",
		"Email":         "Email used to authenticate the client",
		"HTTPHost":      "Content of the host header in the HTTP request",
		"SourceIP":      "Source IP of the request",
		"URL":           "HTTP request URL",
	},
	"workers_trace_events": {
		"DispatchNamespace": "The Cloudflare Worker dispatch namespace",
		"Event":             "Details about the source event",
		"EventTimestampMs":  "The timestamp of when the event was received (in milliseconds)",
		"Exceptions":        "List of uncaught exceptions during the invocation",
		"Logs":              "List of console messages emitted during the invocation",
		"Outcome":           "The outcome of the worker script invocation",
		"ScriptName":        "The Cloudflare Worker script name",
	},
}

// fields answers the fields of a dataset the scope pushes: name to
// description, as the schema's logpush_field_response_collection. A
// dataset the simulator does not list, or one of the other scope, is 400
// code 1001.
func (s *Simulator) fields(w http.ResponseWriter, t target) {
	fs, ok := datasetFields[t.dataset]
	if !ok || !slices.Contains(cloudflare.DatasetScopes(t.dataset), t.scope) {
		writeFailure(w, fail(http.StatusBadRequest, message{Code: 1001, Message: "dataset " + t.dataset + " is not available for a " + t.scope}))
		return
	}
	out := make(map[string]string, len(fs)+1)
	for k, v := range fs {
		out[k] = v
	}
	if t.dataset == "firewall_events" && t.scope == "account" {
		out["ZoneName"] = "The human-readable name of the zone"
	}
	writeJSON(w, http.StatusOK, success(out))
}

// DatasetFields returns the field names the simulator lists for dataset at
// scope ("zone" or "account"), sorted; nil for a dataset it does not serve
// there. Tests pick real and misspelt names from it.
func DatasetFields(scope, dataset string) []string {
	fs, ok := datasetFields[dataset]
	if !ok || !slices.Contains(cloudflare.DatasetScopes(dataset), scope) {
		return nil
	}
	var names []string
	for k := range fs {
		names = append(names, k)
	}
	if dataset == "firewall_events" && scope == "account" && !slices.Contains(names, "ZoneName") {
		names = append(names, "ZoneName")
	}
	slices.Sort(names)
	return names
}
