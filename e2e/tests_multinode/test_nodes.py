"""Three nodes, each in its own network namespace: Ready, labelled, and their pods reach one
another across nodes, by pod IP and through a Service (kube-proxy on every node, CoreDNS)."""

from __future__ import annotations

from e2e.tests.kube import Kubectl, wait_until
from e2e.tests_multinode.mn import (
    LABEL_NODE,
    LABEL_ZONE,
    NODES,
    client_pod,
    node_of,
    nodes_ready,
    pinned_pod,
    probe,
)


def test_three_nodes_ready_with_labels(kubectl: Kubectl) -> None:
    assert nodes_ready(kubectl) == set(NODES), "not every node is Ready"
    ips = set()
    for node in kubectl.json("get", "nodes")["items"]:
        name, labels = node["metadata"]["name"], node["metadata"]["labels"]
        assert labels.get(LABEL_NODE) == name, labels
        assert labels.get(LABEL_ZONE) == f"zone-{name.removeprefix('node')}", labels
        ips |= {a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"}
    assert len(ips) == len(NODES), f"nodes share an address: {ips}"


def test_pod_on_node1_reaches_pod_on_node3(kubectl: Kubectl, multinode_ns: str) -> None:
    ns = multinode_ns
    server = pinned_pod(kubectl, ns, "server", "node3", ["python3", "-m", "http.server", "8000"],
                        labels={"app": "server"})
    kubectl.apply({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "server", "namespace": ns},
                   "spec": {"selector": {"app": "server"},
                            "ports": [{"port": 80, "targetPort": 8000}]}})
    client = client_pod(kubectl, ns, "node1")
    assert node_of(kubectl.json("-n", ns, "get", "pod", client)) == "node1"
    assert node_of(server) == "node3"
    ip = server["status"]["podIP"]
    assert probe(kubectl, ns, client, "http", f"http://{ip}:8000/") == "HTTP 200"
    cluster_ip = kubectl.json("-n", ns, "get", "svc", "server")["spec"]["clusterIP"]
    # The Service's endpoints come up a moment after the pod.
    wait_until("the Service by its ClusterIP", lambda: probe(
        kubectl, ns, client, "http", f"http://{cluster_ip}/") == "HTTP 200", timeout=60)
    name = f"http://server.{ns}.svc.cluster.local/"
    assert probe(kubectl, ns, client, "http", name) == "HTTP 200", f"{name} (CoreDNS)"
