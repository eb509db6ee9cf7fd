#!/usr/bin/env bash
# Prometheus, run on the host, discovering pods through the Kubernetes API (kubernetes_sd_configs).
# Debian's prometheus 2.42 is built WITHOUT kubernetes_sd_configs ("field kubernetes_sd_configs
# not found"), so e2e/build.sh builds Prometheus from its Go module and this script uses that
# binary ($NEPTUNE_K8S_BIN/prometheus); Debian's package still provides promtool.
#
# Scrape convention (the chart and the operator follow it):
#   pod annotation  prometheus.io/scrape: "true"           opt in (required)
#   and either      prometheus.io/port: "<port>"           one metrics port per pod
#   or              container ports named metrics, metrics-<suffix>   every such port is scraped
#                                                          (several executor processes per pod)
#   optional        prometheus.io/path: /metrics           (default /metrics)
#                   prometheus.io/scheme: http|https        (default http)
# Every pod label is copied onto the series (dots and slashes become _), plus namespace, pod,
# container and node. honor_labels: a metric's own labels win over these target labels, so the
# runtime's `job` label (the Neptune job) and the operator's per-app `namespace` label survive.
#
#   e2e/prometheus.sh up|down|url
# Env: PROMETHEUS_PORT (9090), PROMETHEUS_SCRAPE_INTERVAL (5s)
set -euo pipefail
# shellcheck source=lib/common.sh
. "$(dirname "$0")/lib/common.sh"

PROM_DIR="$NEPTUNE_STATE/prometheus"
PROMETHEUS_PORT=${PROMETHEUS_PORT:-9090}
INTERVAL=${PROMETHEUS_SCRAPE_INTERVAL:-5s}
PROMETHEUS_BIN=${PROMETHEUS_BIN:-$K8S_BIN/prometheus}

write_config() {
    mkdir -p "$PROM_DIR/data"
    write_if_changed "$PROM_DIR/prometheus.yml" <<YAML
global:
  scrape_interval: $INTERVAL
  evaluation_interval: $INTERVAL
scrape_configs:
  - job_name: kubernetes-pods
    honor_labels: true
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: $KUBECONFIG_ADMIN
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], action: keep, regex: "true"}
      - {source_labels: [__meta_kubernetes_pod_phase], action: drop, regex: "Pending|Succeeded|Failed"}
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_port], action: keep, regex: ".+"}
      - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: "(.+);(.+)"
        replacement: "\$1:\$2"
        target_label: __address__
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path], regex: "(.+)", target_label: __metrics_path__}
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scheme], regex: "(https?)", target_label: __scheme__}
      - {action: labelmap, regex: "__meta_kubernetes_pod_label_(.+)"}
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
      - {source_labels: [__meta_kubernetes_pod_node_name], target_label: node}
  - job_name: kubernetes-pods-metrics-ports
    honor_labels: true
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: $KUBECONFIG_ADMIN
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], action: keep, regex: "true"}
      - {source_labels: [__meta_kubernetes_pod_phase], action: drop, regex: "Pending|Succeeded|Failed"}
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_port], action: drop, regex: ".+"}
      - {source_labels: [__meta_kubernetes_pod_container_port_name], action: keep, regex: "metrics(-.+)?"}
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path], regex: "(.+)", target_label: __metrics_path__}
      - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scheme], regex: "(https?)", target_label: __scheme__}
      - {action: labelmap, regex: "__meta_kubernetes_pod_label_(.+)"}
      - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
      - {source_labels: [__meta_kubernetes_pod_container_name], target_label: container}
      - {source_labels: [__meta_kubernetes_pod_node_name], target_label: node}
YAML
}

ready() { curl -fsS --max-time 2 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"; }

case "${1:-}" in
    up)
        [ -x "$PROMETHEUS_BIN" ] || die "no $PROMETHEUS_BIN: run e2e/build.sh all (Debian's prometheus lacks kubernetes_sd_configs)"
        [ -f "$KUBECONFIG_ADMIN" ] || die "no cluster: run e2e/cluster.sh up (or controlplane.sh up) first"
        step "Prometheus on 127.0.0.1:$PROMETHEUS_PORT (pods with prometheus.io/scrape=true)"
        before=$(sha256sum 2>/dev/null <"$PROM_DIR/prometheus.yml" || true)
        write_config
        if is_running prometheus && [ "$before" != "$(sha256sum <"$PROM_DIR/prometheus.yml")" ]; then
            log "    configuration changed: reloading"
            curl -fsS -X POST "http://127.0.0.1:$PROMETHEUS_PORT/-/reload" || die "reload failed"
        fi
        start_proc prometheus "$PROMETHEUS_BIN" --config.file "$PROM_DIR/prometheus.yml" \
            --storage.tsdb.path "$PROM_DIR/data" --storage.tsdb.retention.time 1d \
            --web.listen-address "127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle
        WATCH=prometheus wait_for 60 "Prometheus ready" ready
        CURRENT_STEP="(finished)" ;;
    down) stop_proc prometheus ;;
    url) echo "http://127.0.0.1:$PROMETHEUS_PORT" ;;
    *) echo "usage: $0 up|down|url" >&2; exit 2 ;;
esac
