package simulator

import (
	"net/http"
)

// EndpointFields is GET .../logpush/datasets/{dataset}/fields.
const EndpointFields = "fields"

// datasetFields are the fields the simulator knows, a subset of
// Cloudflare's for the common datasets (name to description, as the API
// answers them).
var datasetFields = map[string]map[string]string{
	"http_requests": {
		"ClientIP":           "IP address of the client",
		"ClientRequestHost":  "Host requested by the client",
		"ClientRequestPath":  "URI path requested by the client",
		"EdgeResponseStatus": "HTTP status code returned by Cloudflare to the client",
		"EdgeStartTimestamp": "Timestamp at which the edge received request from the client",
		"RayID":              "ID of the request",
	},
	"firewall_events": {
		"Action":       "The code of the first-class action the Cloudflare Firewall took on this request",
		"ClientIP":     "The visitor's IP address",
		"Datetime":     "The date and time the event occurred at the edge",
		"RayID":        "The RayID of the request that issued the challenge/block",
		"Source":       "The Cloudflare security product triggered by this request",
		"ZoneName":     "The name of the zone (account-level jobs)",
		"ClientASN":    "The ASN number of the visitor",
		"EdgeColoCode": "The airport code of the Cloudflare data center that served this request",
	},
	"dns_logs": {
		"ColoCode":     "IATA airport code of data center that received the request",
		"QueryName":    "Name of the query that was sent",
		"QueryType":    "Integer value of query type",
		"ResponseCode": "Integer value of response code",
		"Timestamp":    "Timestamp at which the query occurred",
	},
	"audit_logs": {
		"ActionType":   "Type of action taken",
		"ActorEmail":   "Email of the actor",
		"ID":           "Unique identifier of an audit log",
		"ResourceType": "Type of resource that was changed",
		"When":         "When the change happened",
	},
	"gateway_dns": {
		"Datetime":  "The date and time the corresponding DNS request was made",
		"QueryName": "The query name",
		"SrcIP":     "The source IP address making the query",
	},
}

// fields answers the fields of the dataset, or 400 code 1001 for a
// dataset the simulator does not know.
func (s *Simulator) fields(w http.ResponseWriter, t target) {
	f, ok := datasetFields[t.dataset]
	if !ok {
		writeFailure(w, fail(http.StatusBadRequest, message{Code: 1001, Message: "invalid dataset: " + t.dataset}))
		return
	}
	writeJSON(w, http.StatusOK, success(f))
}
