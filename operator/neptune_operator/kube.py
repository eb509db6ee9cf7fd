"""A small async Kubernetes REST client on aiohttp, authenticated the way kopf is.

Why not the official client: the operator needs five verbs on a dozen kinds, and server-side
apply (one PATCH per child, idempotent) is awkward there. kopf already depends on aiohttp and
already knows how to log in (in-cluster token or kubeconfig), so this module reuses both.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import kopf

from .constants import API_VERSION, FIELD_MANAGER, KIND, PLURAL

# (apiVersion, kind) -> plural resource name, for every kind the operator touches.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "Secret"): "secrets",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "Pod"): "pods",
    ("v1", "Event"): "events",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitors",
    ("scheduling.k8s.io/v1", "PriorityClass"): "priorityclasses",
    (API_VERSION, KIND): PLURAL,
}
CLUSTER_SCOPED = {"PriorityClass"}


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        reason = body
        with contextlib.suppress(ValueError, AttributeError):
            reason = json.loads(body).get("message", body)
        super().__init__(f"{method} {path}: HTTP {status}: {reason}")
        self.status = status
        self.reason = str(reason)

    @property
    def temporary(self) -> bool:
        """Worth retrying: throttling, server trouble, conflicts of concurrent writers."""
        return self.status in (409, 429) or self.status >= 500


def path_for(api_version: str, kind: str, namespace: str | None, name: str | None = None,
             subresource: str | None = None) -> str:
    plural = PLURALS[(api_version, kind)]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    ns = "" if kind in CLUSTER_SCOPED or namespace is None else f"/namespaces/{namespace}"
    out = f"{base}{ns}/{plural}"
    if name is not None:
        out += f"/{name}"
    if subresource is not None:
        out += f"/{subresource}"
    return out


def _ssl(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context: ssl.SSLContext = info.as_ssl_context()
    return context


class Kube:
    """One aiohttp session; re-logs in once on 401 (service-account tokens rotate)."""

    def __init__(self, login: Callable[[], kopf.ConnectionInfo | None],
                 timeout_s: float = 30.0) -> None:
        self._login = login
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._server = ""

    async def _ensure(self, fresh: bool = False) -> aiohttp.ClientSession:
        if self._session is not None and not fresh:
            return self._session
        if self._session is not None:
            await self._session.close()
        info = self._login()
        if info is None:
            raise kopf.TemporaryError("no Kubernetes credentials found", delay=10)
        self._server = info.server.rstrip("/")
        self._session = aiohttp.ClientSession(
            headers=info.as_http_headers(),
            connector=aiohttp.TCPConnector(ssl=_ssl(info), limit=32),
            timeout=self._timeout,
        )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, *, body: Any = None,
                      params: Mapping[str, str] | None = None,
                      content_type: str = "application/json") -> Any:
        for attempt in (0, 1):
            session = await self._ensure(fresh=attempt == 1)
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": content_type} if body is not None else {}
            async with session.request(method, self._server + path, data=data, params=params,
                                       headers=headers) as resp:
                text = await resp.text()
                if resp.status == 401 and attempt == 0:
                    continue
                if resp.status >= 400:
                    raise ApiError(resp.status, method, path, text)
                return json.loads(text) if text else None
        raise AssertionError("unreachable")

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply: idempotent, so re-running a reconcile never duplicates children."""
        meta = manifest["metadata"]
        path = path_for(manifest["apiVersion"], manifest["kind"], meta.get("namespace"),
                        meta["name"])
        out: dict[str, Any] = await self.request(
            "PATCH", path, body=manifest,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            # JSON is YAML: the apply content type accepts it.
            content_type="application/apply-patch+yaml")
        return out

    async def patch(self, api_version: str, kind: str, namespace: str | None, name: str,
                    body: Any, content_type: str = "application/merge-patch+json",
                    subresource: str | None = None) -> dict[str, Any]:
        """A JSON merge patch, or with content_type application/json-patch+json a JSON patch:
        fields the operator changes on objects it does not render (the resource's own
        executors.replicas, a migration, a pod's resize)."""
        out: dict[str, Any] = await self.request(
            "PATCH", path_for(api_version, kind, namespace, name, subresource), body=body,
            params={"fieldManager": FIELD_MANAGER}, content_type=content_type)
        return out

    async def create(self, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create; None if it already exists (for things made once, like the secret)."""
        meta = manifest["metadata"]
        path = path_for(manifest["apiVersion"], manifest["kind"], meta.get("namespace"))
        try:
            out: dict[str, Any] = await self.request("POST", path, body=manifest,
                                                     params={"fieldManager": FIELD_MANAGER})
            return out
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise

    async def list(self, api_version: str, kind: str, namespace: str | None,
                   label_selector: str | None = None) -> list[dict[str, Any]]:
        """Every object of a kind in a namespace (None: in all), with those labels if given,
        one page at a time."""
        out: list[dict[str, Any]] = []
        first = {"limit": "500", **({"labelSelector": label_selector} if label_selector else {})}
        params = first
        while True:
            page = await self.request("GET", path_for(api_version, kind, namespace),
                                      params=params)
            out.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return out
            params = {**first, "continue": token}

    async def get(self, api_version: str, kind: str, namespace: str | None,
                  name: str) -> dict[str, Any] | None:
        try:
            out: dict[str, Any] = await self.request(
                "GET", path_for(api_version, kind, namespace, name))
            return out
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def delete(self, api_version: str, kind: str, namespace: str | None,
                     name: str) -> bool:
        try:
            await self.request("DELETE", path_for(api_version, kind, namespace, name),
                               params={"propagationPolicy": "Background"})
            return True
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise


def default_login(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, then kubeconfig (as kopf does)."""
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(settings=settings)
    if info is None:
        info = kopf.login_with_kubeconfig(settings=settings)
    return info


def error_text(body: str, limit: int = 200) -> str:
    """The driver's {"error": ...} answer, else the start of the body."""
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(body)["error"])[:limit]
    return body[:limit]


async def http_get_json(url: str, timeout_s: float = 2.0,
                        headers: Mapping[str, str] | None = None) -> Any:
    """GET a JSON document (the driver's /status). Raises on timeouts, and
    aiohttp.ClientResponseError (with .status, and the driver's error as .message) on HTTP
    errors."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with (aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, headers=dict(headers or {})) as resp):
        if resp.status >= 400:
            raise aiohttp.ClientResponseError(
                resp.request_info, resp.history, status=resp.status,
                message=error_text(await resp.text()) or str(resp.reason))
        return await resp.json(content_type=None)

