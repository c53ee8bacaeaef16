// Package deploy holds no code: it is the home of the deployment files and
// of the tests that check them.
//
//   - Dockerfile: the image (static binary on distroless, non-root).
//   - compose.yaml: Redis, the Cloudflare API simulator, two workers,
//     Prometheus with the alert rules and Grafana with the dashboard.
//   - kubernetes/: the worker Deployment, its Secret, Service, ServiceMonitor,
//     PrometheusRule and autoscaling (KEDA, or an HPA).
//   - prometheus/: alert rules, their promtool tests, a scrape config.
//   - grafana/: the dashboard and its provisioning.
//
// The tests (package deploy_test) run promtool on the rules, decode every
// manifest strictly, and run a real worker fleet scraped by a real
// Prometheus to check that every dashboard and alert query parses and, for
// the dashboard, returns data. README.md says what is not checked.
package deploy
