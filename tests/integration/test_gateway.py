"""The gateway against a real nats-server and the four services on libvirt's test driver."""

from __future__ import annotations

import time

import httpx
import pytest

from flint import subjects
from tests.helpers import login
from tests.integration.conftest import PASSWORD

pytestmark = pytest.mark.integration


def test_health_needs_no_login_and_says_nothing_more(stack):
    resp = httpx.get(f"{stack}/api/v1/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/api/v1/health/details"),
        ("GET", "/api/v1/vms"),
        ("GET", "/api/v1/hosts"),
        ("GET", "/api/v1/storage/summary"),
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/tokens"),
        ("GET", "/api/v1/schema/openapi.json"),
        ("GET", "/metrics"),
    ],
)
def test_anonymous_callers_get_401_problem(stack, method, path):
    resp = httpx.request(method, f"{stack}{path}", json={} if method == "POST" else None)
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "log in" in resp.json()["detail"]


def test_wrong_password_is_refused_with_reason(stack):
    resp = httpx.post(f"{stack}/api/v1/auth/login", json={"username": "admin", "password": "nope-nope"})
    assert resp.status_code == 401
    assert resp.json()["detail"] == "wrong user name or password"


def test_login_me_and_health_details(stack):
    client = login(stack, password=PASSWORD)
    me = client.get("/api/v1/auth/me").json()
    assert me == {"username": "admin", "role": "admin", "via": "session"}
    cookie = next(c for c in client.cookies.jar if c.name == "flint_session")
    assert cookie.has_nonstandard_attr("HttpOnly")

    def all_healthy():
        details = client.get("/api/v1/health/details").json()
        return details if details["status"] == "ok" else None

    deadline = time.monotonic() + 30
    details = None
    while time.monotonic() < deadline and details is None:
        details = all_healthy()
        time.sleep(0.2)
    assert details is not None, client.get("/api/v1/health/details").text
    assert details["nats"]["ok"] is True
    host = next(h for h in details["hosts"] if h["name"] == "gwtest")
    assert host["libvirt"]["ok"] and host["libvirt"]["version"].count(".") == 2
    assert host["virt_type"] == "qemu"
    assert set(host["services"]) == set(subjects.SERVICES)
    assert all(s["ok"] for s in host["services"].values())


def test_cookie_writes_need_the_csrf_header(stack):
    client = login(stack, password=PASSWORD)
    del client.headers["X-CSRF-Token"]
    resp = client.post("/api/v1/auth/tokens", json={"name": "ci"})
    assert resp.status_code == 403
    assert "csrf" in resp.json()["detail"].lower()


def test_bearer_token_shown_once_stored_hashed_and_revocable(stack):
    client = login(stack, password=PASSWORD)
    created = client.post("/api/v1/auth/tokens", json={"name": "script", "role": "viewer"}).json()
    token = created["token"]
    assert token.startswith("flint_")
    listed = client.get("/api/v1/auth/tokens").json()
    assert any(t["id"] == created["id"] for t in listed)
    assert token not in str(listed)  # never shown again
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{stack}/api/v1/auth/me", headers=bearer).json()["role"] == "viewer"
    # viewer may read, not act
    resp = httpx.post(f"{stack}/api/v1/vms/00000000-0000-0000-0000-000000000000/actions",
                      headers=bearer, json={"action": "start"})
    assert resp.status_code == 403
    assert client.delete(f"/api/v1/auth/tokens/{created['id']}").status_code == 204
    resp = httpx.get(f"{stack}/api/v1/auth/me", headers=bearer)
    assert resp.status_code == 401


def test_bad_body_names_the_field(stack):
    resp = httpx.post(f"{stack}/api/v1/auth/login", json={"username": "admin"})
    assert resp.status_code == 400
    body = resp.json()
    assert body["errors"][0]["field"] == "password"
    assert "password" in body["detail"]


def test_openapi_document_for_a_logged_in_user(stack):
    client = login(stack, password=PASSWORD)
    doc = client.get("/api/v1/schema/openapi.json").json()
    assert "/api/v1/vms" in doc["paths"]
    assert "/api/v1/health/details" in doc["paths"]


def test_unknown_api_path_is_a_problem_not_the_spa(stack):
    client = login(stack, password=PASSWORD)
    resp = client.get("/api/v1/nope")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_logout_ends_the_session(stack):
    client = login(stack, password=PASSWORD)
    assert client.post("/api/v1/auth/logout").status_code == 200
    # the old cookie value no longer works even if a client kept it
    assert client.get("/api/v1/auth/me").status_code == 401
