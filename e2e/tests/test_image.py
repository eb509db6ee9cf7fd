"""The image holds only the product (issue 14, item 5): the runtime and the operator, with their
dependencies; no benchmark package or peers, no test code or test tools."""

from __future__ import annotations

import json

from .kube import Kubectl, restricted_pod, wait_until

PROBE = """
import importlib.util, json, os, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
print(json.dumps({
    "found": {m: importlib.util.find_spec(m) is not None for m in (
        "neptune_runtime", "neptune_operator", "confluent_kafka", "rocksdict", "cryptography",
        "neptune_bench", "pyspark", "dask", "matplotlib", "pytest", "hypothesis", "mypy",
        "ruff", "tests", "mkdocs")},
    "site": sorted(os.listdir(site)),
    "roots": sorted(os.listdir("/")),
}))
"""


def test_the_image_holds_the_product_and_nothing_else(kubectl: Kubectl,
                                                      restricted_ns: str) -> None:
    pod = restricted_pod("image-contents", ["/opt/neptune/bin/python", "-c", PROBE],
                         metadata={"namespace": restricted_ns})
    kubectl.apply(pod)
    wait_until("the probe pod to finish", lambda: kubectl.json(
        "-n", restricted_ns, "get", "pod", "image-contents")["status"].get("phase")
        in ("Succeeded", "Failed"), timeout=120)
    report = json.loads(kubectl.run("-n", restricted_ns, "logs", "image-contents").stdout)
    found = report["found"]
    for product in ("neptune_runtime", "neptune_operator", "confluent_kafka", "rocksdict",
                    "cryptography"):
        assert found[product], f"the image lacks {product}"
    for extra in ("neptune_bench", "pyspark", "dask", "matplotlib", "pytest", "hypothesis",
                  "mypy", "ruff", "tests", "mkdocs"):
        assert not found[extra], f"the image holds {extra}: it is not the product"
    assert not [n for n in report["site"] if n.startswith(("tests", "neptune_bench"))]
    assert "src" not in report["roots"], "the build's sources were left in the image"
