"""The Grafana dashboard, built with grafana-foundation-sdk and committed as JSON in the chart.

PANELS is plain data (title, unit, queries) so that a test with a real Prometheus can run
every query the dashboard shows; `build()` turns it into the dashboard model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus as gp
from grafana_foundation_sdk.builders import timeseries as gt
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

UID = "neptune-overview"
NS = 'namespace=~"$namespace"'
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str = ""


def _quantile(q: float, metric: str, by: str) -> str:
    return (f"histogram_quantile({q}, sum by ({by}, le) "
            f"(rate({metric}_bucket{{{NS}}}[$__rate_interval])))")


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "Stream latency p50/p99 vs SLO", "s",
        (
            Query(_quantile(0.5, "neptune_stream_latency_seconds", "namespace, job"),
                  "{{namespace}}/{{job}} p50"),
            Query(_quantile(0.99, "neptune_stream_latency_seconds", "namespace, job"),
                  "{{namespace}}/{{job}} p99"),
            Query(f"max by (namespace, job) (neptune_operator_job_slo_seconds{{{NS}}})",
                  "{{namespace}}/{{job}} SLO"),
        ),
        "Event in to result out, per stream job; the SLO line comes from the operator.",
    ),
    PanelSpec(
        "Suspension latency", "s",
        (
            Query(_quantile(0.5, "neptune_task_suspension_latency_seconds", "namespace"),
                  "{{namespace}} p50"),
            Query(_quantile(0.99, "neptune_task_suspension_latency_seconds", "namespace"),
                  "{{namespace}} p99"),
        ),
        "From the request to suspend a batch task to the task being suspended.",
    ),
    PanelSpec(
        "Queue delay p99", "s",
        (Query(_quantile(0.99, "neptune_task_queue_delay_seconds", "namespace, job, kind"),
               "{{namespace}}/{{job}} ({{kind}})"),),
        "Ready to started.",
    ),
    PanelSpec(
        "Suspensions per second", "ops",
        (Query(f"sum by (namespace, job) (rate(neptune_task_suspensions_total{{{NS}}}"
               "[$__rate_interval]))", "{{namespace}}/{{job}}"),),
    ),
    PanelSpec(
        "Tasks by state", "short",
        (Query(f"sum by (state, kind) (neptune_tasks{{{NS}}})", "{{kind}} {{state}}"),),
    ),
    PanelSpec(
        "Batch throughput", "rps",
        (Query(f"sum by (namespace, job) (rate(neptune_batch_records_total{{{NS}}}"
               "[$__rate_interval]))", "{{namespace}}/{{job}}"),),
        "Records per second processed by batch jobs.",
    ),
    PanelSpec(
        "Stage tasks per second", "ops",
        (Query(f"sum by (namespace, job, stage) (rate(neptune_stage_tasks_total{{{NS}}}"
               "[$__rate_interval]))", "{{namespace}}/{{job}} stage {{stage}}"),),
        "Batch stage tasks finished per second, per stage (a dataset job's stages split at "
        "its shuffles; other batch jobs have stage 0).",
    ),
    PanelSpec(
        "Stage task duration p50/p99", "s",
        (
            Query(_quantile(0.5, "neptune_stage_task_seconds", "namespace, job, stage"),
                  "{{namespace}}/{{job}} stage {{stage}} p50"),
            Query(_quantile(0.99, "neptune_stage_task_seconds", "namespace, job, stage"),
                  "{{namespace}}/{{job}} stage {{stage}} p99"),
        ),
        "A stage task's start to its finish, suspensions included.",
    ),
    PanelSpec(
        "Stage throughput", "rps",
        (Query(f"sum by (namespace, job, stage) (rate(neptune_stage_records_total{{{NS}}}"
               "[$__rate_interval]))", "{{namespace}}/{{job}} stage {{stage}}"),),
        "Records per second processed by each stage's tasks.",
    ),
    PanelSpec(
        "SLO violations per second", "ops",
        (Query(f"sum by (namespace, job) (rate(neptune_slo_violations_total{{{NS}}}"
               "[$__rate_interval]))", "{{namespace}}/{{job}}"),),
    ),
    PanelSpec(
        "Wasted work (kill policy)", "s",
        (Query(f"sum by (namespace) (rate(neptune_wasted_task_seconds_total{{{NS}}}"
               "[$__rate_interval]))", "{{namespace}}"),),
        "Task seconds thrown away by preemption-by-killing, per second.",
    ),
    PanelSpec(
        "Executors ready", "short",
        (
            Query(f"sum by (namespace) (neptune_executors{{{NS}}})", "{{namespace}} registered"),
            Query(f"sum by (namespace) (neptune_operator_executors_ready{{{NS}}})",
                  "{{namespace}} ready"),
            Query(f"sum by (namespace) (neptune_operator_executors_desired{{{NS}}})",
                  "{{namespace}} desired"),
        ),
    ),
    PanelSpec(
        "Operator reconciles and errors", "ops",
        (
            Query("sum by (action) (rate(neptune_operator_reconciles_total[$__rate_interval]))",
                  "{{action}}"),
            Query("sum(rate(neptune_operator_reconcile_errors_total[$__rate_interval]))",
                  "errors"),
        ),
    ),
)


def queries() -> list[str]:
    return [q.expr for p in PANELS for q in p.queries]


def _panel(spec: PanelSpec) -> gt.Panel:
    panel = gt.Panel().title(spec.title).unit(spec.unit).datasource(DS).height(8).span(12)
    if spec.description:
        panel = panel.description(spec.description)
    for i, q in enumerate(spec.queries):
        panel = panel.with_target(
            gp.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(chr(ord("A") + i))
        )
    return panel


def build() -> dict[str, Any]:
    board = (
        gd.Dashboard("Neptune: stream/batch applications")
        .uid(UID)
        .tags(["neptune"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(gd.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            gd.QueryVariable("namespace")
            .label("Namespace")
            .datasource(DS)
            .query("label_values(neptune_executors, namespace)")
            .include_all(True)
            .all_value(".*")
            .multi(True)
        )
    )
    for spec in PANELS:
        board = board.with_panel(_panel(spec))
    # Round-trip through the SDK's encoder: the result is plain JSON data.
    out: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return out
