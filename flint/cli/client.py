"""The CLI's HTTP client: FLINT_URL and FLINT_TOKEN, problem details turned into one clear line."""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, verify: bool | str | None = None):
        self.url = (url or os.environ.get("FLINT_URL") or "http://127.0.0.1:5550").rstrip("/")
        self.token = token or os.environ.get("FLINT_TOKEN")
        if verify is None:
            # A self-signed gateway: FLINT_CA names its certificate; FLINT_INSECURE=1 skips the check.
            verify = os.environ.get("FLINT_CA") or os.environ.get("FLINT_INSECURE") != "1"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, verify=verify, timeout=60)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        # Names and ids from the command line become path segments: "../users/alice" as a host name must
        # not turn `flint host remove` into a request on another resource.
        if any(part in (".", "..") or "%2e" in part.lower() for part in path.split("?", 1)[0].split("/")):
            raise ApiError(0, f"refusing a path with '.' or '..' segments: {path!r} (check the names given)")
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach Flint at {self.url}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                body = resp.json()
                detail = body.get("detail") or body.get("title") or resp.text
            except ValueError:
                detail = resp.text or resp.reason_phrase
            if resp.status_code == 401 and not self.token:
                detail += " (set FLINT_TOKEN to an API token: `flint token create` from a logged-in session)"
            raise ApiError(resp.status_code, detail)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call("POST", path, json=body if body is not None else {}, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("DELETE", path, **kw)


def die(message: str, code: int = 1) -> int:
    print(f"flint: {message}", file=sys.stderr)
    return code
