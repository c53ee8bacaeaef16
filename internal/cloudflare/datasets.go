package cloudflare

import "slices"

// Datasets by the scope that pushes them, from Cloudflare's log fields
// reference (developers.cloudflare.com/logs/reference/log-fields/, "zone"
// and "account"). firewall_events is both: a zone's job, or since
// 2026-06-30 one account job for every zone (with a ZoneName field).
var (
	// ZoneDatasets are pushed by a zone's job.
	ZoneDatasets = []string{"dns_logs", "firewall_events", "http_requests", "nel_reports", "page_shield_events",
		"spectrum_events", "websocket_analytics", "zaraz_events"}
	// AccountDatasets are pushed by an account's job.
	AccountDatasets = []string{"access_requests", "audit_logs", "audit_logs_v2", "biso_user_actions", "casb_findings",
		"device_posture_results", "dex_application_tests", "dex_device_state_events", "dlp_forensic_copies",
		"dns_firewall_logs", "email_security_alerts", "firewall_events", "gateway_dns", "gateway_http", "gateway_network",
		"ipsec_logs", "magic_ids_detections", "network_analytics_logs", "sinkhole_http_logs", "ssh_logs",
		"warp_config_changes", "warp_toggle_changes", "workers_trace_events", "zero_trust_network_sessions"}
)

// DatasetScopes returns the scopes (ScopeZone, ScopeAccount) that push
// dataset: none for a dataset Cloudflare does not list, both for
// firewall_events.
func DatasetScopes(dataset string) []string {
	var s []string
	if slices.Contains(ZoneDatasets, dataset) {
		s = append(s, ScopeZone)
	}
	if slices.Contains(AccountDatasets, dataset) {
		s = append(s, ScopeAccount)
	}
	return s
}
