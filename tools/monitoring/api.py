"""Small clients for the Prometheus and Alertmanager HTTP APIs."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(RuntimeError):
    pass


class Prometheus:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)

    def _get(self, path: str, **params: str) -> Any:
        response = self._client.get(path, params=params)
        body = response.json()
        if body.get("status") != "success":
            raise ApiError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result as a list of ``{"metric": {...}, "value": [t, "v"]}``.

        A scalar or string result comes back as one element without labels.
        """
        data = self._get("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def series(self, match: str) -> list[dict[str, str]]:
        result: list[dict[str, str]] = self._get("/api/v1/series", **{"match[]": match})
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts."""
        result: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return result

    def alert_state(self, alertname: str) -> set[str]:
        """States ("pending", "firing") of the alert's instances; empty when inactive."""
        return {a["state"] for a in self.alerts() if a["labels"].get("alertname") == alertname}

    def targets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/api/v1/targets", state="active")["activeTargets"]
        return result

    def rule_groups(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/api/v1/rules")["groups"]
        return result

    def close(self) -> None:
        self._client.close()


class Alertmanager:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        response = self._client.get("/api/v2/alerts", params=filters)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Send alerts the way Prometheus does (labels, annotations, startsAt/endsAt)."""
        response = self._client.post("/api/v2/alerts", json=alerts)
        response.raise_for_status()

    def close(self) -> None:
        self._client.close()
