"""A Kafka app and its upgrade mode, with the operator against a real kube-apiserver: the
Secret mounted in the driver and named in jobs.json, a missing Secret in an Event and the
status, NEPTUNE_UPGRADE_MODE and NEPTUNE_SPEC_GENERATION through scale, reconfigure, roll
and reload (also across an operator restart), and objects of the old CRD migrated.

No kubelet runs here: assertions are about API objects, Events and status.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.controlplane import ControlPlane

from .op_helpers import BASE
from .op_operator import Operator, wait_for
from .test_integration_crd import old_crd, wait_for_schema

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NS = "kafka-tests"
KAFKA = {"bootstrapServers": "kafka-0.kafka.svc:9092", "topic": "transactions",
         "group": "fraud-score", "secretRef": {"name": "kafka-creds"}}


@pytest.fixture(scope="module")
def cluster(controlplane: ControlPlane) -> ControlPlane:
    cp = controlplane
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f",
               str(ROOT / "crds" / "continuousapplication.yaml"))
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s",
               "crd/continuousapplications.neptune.dev")
    cp.kubectl("create", "namespace", NS, check=False)
    return cp


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Operator]:
    op = Operator(cluster, tmp_path_factory.mktemp("kafka-operator") / "operator.log", NS)
    op.start()
    try:
        yield op
    finally:
        op.stop()
        print(op.log.read_text(errors="replace")[-4000:])


def capp(name: str, **spec: Any) -> dict[str, Any]:
    obj = copy.deepcopy(BASE)
    obj["metadata"] = {"name": name, "namespace": NS}
    obj["spec"]["monitoring"] = {"podMonitor": False}
    obj["spec"]["jobs"][0]["source"] = {"kafka": dict(KAFKA)}
    obj["spec"].update(spec)
    return obj


def apply(cp: ControlPlane, obj: dict[str, Any]) -> None:
    cp.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(obj))


def patch(cp: ControlPlane, name: str, spec: dict[str, Any]) -> None:
    cp.kubectl("patch", "capp", name, "-n", NS, "--type", "merge",
               "-p", json.dumps({"spec": spec}))


def get(cp: ControlPlane, kind: str, name: str) -> dict[str, Any]:
    obj = cp.get(kind, name, NS)
    assert obj is not None, f"{kind}/{name}"
    return obj


def events(cp: ControlPlane, name: str) -> list[tuple[str, str, str]]:
    out = cp.kubectl("get", "events", "-n", NS, "--field-selector",
                     f"involvedObject.name={name},involvedObject.kind=ContinuousApplication",
                     "-o", "json").stdout
    return [(e["type"], e["reason"], e["message"]) for e in json.loads(out)["items"]]


def reasons(cp: ControlPlane, name: str) -> list[str]:
    return [r for _, r, _ in events(cp, name)]


def driver_env(cp: ControlPlane, app: str) -> dict[str, str]:
    dep = get(cp, "deploy", f"{app}-driver")
    (driver,) = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in driver["env"]}


def revision(cp: ControlPlane, app: str) -> tuple[str, str]:
    env = driver_env(cp, app)
    return env["NEPTUNE_SPEC_GENERATION"], env["NEPTUNE_UPGRADE_MODE"]


def generation(cp: ControlPlane, kind: str, name: str) -> int:
    return int(get(cp, kind, name)["metadata"]["generation"])


def progressing(cp: ControlPlane, app: str) -> str:
    st = (cp.get("capp", app, NS) or {}).get("status") or {}
    return next((c["message"] for c in st.get("conditions") or []
                 if c["type"] == "Progressing"), "")


def test_the_kafka_secret_is_mounted_and_named(cluster: ControlPlane,
                                                operator: Operator) -> None:
    apply(cluster, capp("cards", upgradeMode="stateless"))
    dep = wait_for("driver", lambda: cluster.get("deploy", "cards-driver", NS))
    pod = dep["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"].startswith("kafka-")]
    assert volume["secret"] == {"secretName": "kafka-creds", "defaultMode": 0o440}
    (driver,) = pod["containers"]
    assert {"name": volume["name"], "mountPath": "/var/run/neptune/kafka/kafka-creds",
            "readOnly": True} in driver["volumeMounts"]
    env = driver_env(cluster, "cards")
    assert (env["NEPTUNE_UPGRADE_MODE"], env["NEPTUNE_SPEC_GENERATION"]) == ("stateless", "1")
    jobs = json.loads(get(cluster, "cm", "cards-config")["data"]["jobs.json"])["jobs"]
    assert jobs["score"]["source"] == {"kafka": {
        **KAFKA, "secretDir": "/var/run/neptune/kafka/kafka-creds"}}
    sts = get(cluster, "sts", "cards-executor")
    assert not [v for v in sts["spec"]["template"]["spec"]["volumes"] if "secret" in v]

    # The Secret does not exist yet: a Warning, and the status says what the driver waits for.
    wait_for("SecretMissing", lambda: "SecretMissing" in reasons(cluster, "cards"))
    (kind, _, message), = [e for e in events(cluster, "cards") if e[1] == "SecretMissing"]
    assert kind == "Warning" and "kafka-creds" in message
    wait_for("Progressing names the Secret",
             lambda: "waits for Secret kafka-creds" in progressing(cluster, "cards"))
    # stateless promises nothing an emptyDir breaks: no StateNotDurable.
    assert "StateNotDurable" not in reasons(cluster, "cards")

    cluster.kubectl("create", "secret", "generic", "kafka-creds", "-n", NS,
                    "--from-literal=security.protocol=SASL_SSL",
                    "--from-literal=sasl.mechanism=SCRAM-SHA-512",
                    "--from-literal=sasl.username=fraud", "--from-literal=sasl.password=x")
    wait_for("the Secret no longer missing",
             lambda: "kafka-creds" not in progressing(cluster, "cards")
             and "waiting for pods" in progressing(cluster, "cards"))


def test_last_state_without_storage_is_a_warning(cluster: ControlPlane,
                                                 operator: Operator) -> None:
    apply(cluster, capp("volatile"))  # upgradeMode: the default, last-state
    wait_for("StateNotDurable", lambda: "StateNotDurable" in reasons(cluster, "volatile"))
    (kind, _, message), = [e for e in events(cluster, "volatile") if e[1] == "StateNotDurable"]
    assert kind == "Warning" and "driver.storage is not set" in message
    assert revision(cluster, "volatile") == ("1", "last-state")
    durable = capp("durable")
    durable["spec"]["driver"] = {**durable["spec"]["driver"], "storage": {"size": "64Mi"}}
    apply(cluster, durable)
    wait_for("driver", lambda: cluster.get("deploy", "durable-driver", NS))
    wait_for("Created", lambda: "Created" in reasons(cluster, "durable"))
    assert "StateNotDurable" not in reasons(cluster, "durable")


def test_generation_follows_what_the_driver_runs(cluster: ControlPlane,
                                                 operator: Operator) -> None:
    apply(cluster, capp("gen"))
    wait_for("driver", lambda: cluster.get("deploy", "gen-driver", NS))
    assert revision(cluster, "gen") == ("1", "last-state")
    dep_gen = generation(cluster, "deploy", "gen-driver")

    # A scale and a priority change: the resource's generation moves, the driver's does not.
    patch(cluster, "gen", {"executors": {"replicas": 5}})
    wait_for("5 replicas", lambda: get(cluster, "sts", "gen-executor")["spec"]["replicas"] == 5)
    patch(cluster, "gen", {"priority": 600})
    wait_for("Reconfigure", lambda: "Reconfigure" in reasons(cluster, "gen"))
    # upgradeMode alone restarts nothing: it is for the next upgrade.
    patch(cluster, "gen", {"upgradeMode": "stateless"})
    wait_for("two Reconfigure events",
             lambda: reasons(cluster, "gen").count("Reconfigure") >= 2)
    time.sleep(2)  # a few status rounds
    assert generation(cluster, "capp", "gen") == 4
    assert revision(cluster, "gen") == ("1", "last-state")
    assert generation(cluster, "deploy", "gen-driver") == dep_gen  # the driver never restarted

    # A roll: an upgrade, with the resource's generation and its upgradeMode now.
    patch(cluster, "gen", {"image": "neptune:v2"})
    wait_for("generation 5 in the driver", lambda: revision(cluster, "gen") == ("5", "stateless"))

    # A reload (job settings) while the operator is down: on its restart it still knows.
    operator.stop()
    obj = capp("gen", image="neptune:v2", upgradeMode="stateless", priority=600)
    obj["spec"]["executors"]["replicas"] = 5
    obj["spec"]["jobs"][0]["slo"] = "20ms"
    apply(cluster, obj)
    assert generation(cluster, "capp", "gen") == 6
    operator.start()
    wait_for("generation 6 in the driver", lambda: revision(cluster, "gen") == ("6", "stateless"))
    jobs = json.loads(get(cluster, "cm", "gen-config")["data"]["jobs.json"])["jobs"]
    assert jobs["score"]["slo"] == "20ms"
    # And a scale after it: kept.
    patch(cluster, "gen", {"executors": {"replicas": 2}})
    wait_for("2 replicas", lambda: get(cluster, "sts", "gen-executor")["spec"]["replicas"] == 2)
    time.sleep(2)
    assert revision(cluster, "gen") == ("6", "stateless")


def test_an_object_of_the_old_crd_is_migrated(cluster: ControlPlane,
                                              operator: Operator) -> None:
    current, old = old_crd()
    obj = capp("legacy")
    obj["spec"]["jobs"][0]["source"] = "http"
    operator.stop()  # it would see the object first with the old schema
    try:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                        stdin=yaml.safe_dump(old))
        wait_for_schema(cluster, obj, accepted=True)
        apply(cluster, obj)
    finally:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                        stdin=yaml.safe_dump(current))
    other = copy.deepcopy(obj)
    other["metadata"]["name"] = "legacy-new"
    wait_for_schema(cluster, other, accepted=False)
    operator.start()
    wait_for("migrated", lambda: get(cluster, "capp", "legacy")["spec"]["jobs"][0].get(
        "source") == {"http": {}})
    wait_for("SourceMigrated", lambda: "SourceMigrated" in reasons(cluster, "legacy"))
    # Then handled like any other app: children with the new form, and a status.
    wait_for("jobs.json with the object form", lambda: (cluster.get(
        "cm", "legacy-config", NS) or {}).get("data", {}).get("jobs.json", "").find(
        '"source": {"http": {}}') >= 0)
    wait_for("status", lambda: ((cluster.get("capp", "legacy", NS) or {}).get(
        "status") or {}).get("phase"))
