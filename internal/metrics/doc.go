// Package metrics is the daemon's Prometheus endpoint (socketley daemon
// --metrics-listen): a scrape builds the text exposition format (version
// 0.0.4) from what the daemon already holds — the runtime view `ls` gets,
// the control requests it counted, its own process — with no D-Bus call,
// and a small HTTP/1.1 responder serves it at /metrics (docs/metrics.md).
//
// The package links neither github.com/prometheus/client_golang nor
// net/http: both would be initialised at every start of the single
// socketley binary, client commands included (client_golang pulls in
// net/http, crypto/tls and protobuf: measured, `socketley --version` went
// from 1.6× to 2.4× a Go hello-world's start). The tests hold the output to
// client_golang's own parser and linter and to `promtool check metrics`,
// and internal/deps keeps client_golang out of the binary.
package metrics
