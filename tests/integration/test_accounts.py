"""Users, roles, sessions, tokens, lockout and audit against the real gateway and NATS."""

from __future__ import annotations

import re
import time

import httpx
import msgspec
import nats
import pytest

from flint import subjects
from gateway.accounts import Session, _sha256
from gateway.authz import PUBLIC, ROUTE_ROLES
from tests.helpers import eventually, login, run_async
from tests.integration.conftest import PASSWORD

pytestmark = pytest.mark.integration
ROLES = ("viewer", "operator", "admin")
RANK = {"anonymous": -1, "viewer": 0, "operator": 1, "admin": 2}


@pytest.fixture(scope="module")
def admin(stack):
    return login(stack, password=PASSWORD)


@pytest.fixture(scope="module")
def role_clients(stack, admin):
    """One bearer-token client per role, each from a user of that role."""
    clients = {"anonymous": httpx.Client(base_url=stack, timeout=30)}
    for role in ROLES:
        name = f"walk-{role}"
        admin.post("/api/v1/users", json={"name": name, "password": "walk-password", "role": role})
        user = login(stack, username=name, password="walk-password")
        token = user.post("/api/v1/auth/tokens", json={"name": "walk", "role": role}).json()["token"]
        clients[role] = httpx.Client(base_url=stack, timeout=30, headers={"Authorization": f"Bearer {token}"})
    return clients


def _routes_from_openapi(admin) -> list[tuple[str, str]]:
    doc = admin.get("/api/v1/schema/openapi.json").json()
    return [(m.upper(), path) for path, ops in doc["paths"].items() for m in ops if m in ("get", "post", "put", "patch", "delete")]


def _template_key(method: str, path: str) -> tuple[str, str]:
    return method, re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", path)


def test_every_route_in_the_openapi_document_has_a_role_and_is_enforced(stack, admin, role_clients):
    routes = _routes_from_openapi(admin)
    assert len(routes) > 15
    failures = []
    for method, path in routes:
        key = _template_key(method, path)
        assert key in ROUTE_ROLES, f"{key} is served but has no role in gateway/authz.py"
        needed = ROUTE_ROLES[key]
        # Harmless values: ids that do not exist, so writes that pass authorization change nothing.
        url = re.sub(r"\{[^}]+\}", "does-not-exist-0", path)
        for who, client in role_clients.items():
            resp = client.request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)
            if needed == PUBLIC:
                ok = resp.status_code not in (401, 403)
            elif who == "anonymous":
                ok = resp.status_code == 401
            elif RANK[who] < RANK[needed]:
                ok = resp.status_code == 403
            else:
                ok = resp.status_code not in (401, 403)
            if not ok:
                failures.append(f"{who} {method} {url} -> {resp.status_code} (needs {needed})")
    assert not failures, "\n".join(failures)


def test_user_lifecycle_role_change_disable_delete(stack, admin):
    assert admin.post("/api/v1/users", json={"name": "carol", "password": "carol-password", "role": "viewer"}).status_code == 201
    dup = admin.post("/api/v1/users", json={"name": "carol", "password": "carol-password"})
    assert dup.status_code == 409 and dup.json()["errors"][0]["field"] == "name"
    bad = admin.post("/api/v1/users", json={"name": "Bad Name!", "password": "x"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "name"
    carol = login(stack, username="carol", password="carol-password")
    assert carol.get("/api/v1/auth/me").json()["role"] == "viewer"
    assert admin.patch("/api/v1/users/carol", json={"role": "operator"}).json()["role"] == "operator"
    assert carol.get("/api/v1/auth/me").json()["role"] == "operator"  # the current role counts
    assert admin.patch("/api/v1/users/carol", json={"disabled": True}).json()["disabled"] is True
    assert carol.get("/api/v1/auth/me").status_code == 401  # disabling ends her sessions
    resp = httpx.post(f"{stack}/api/v1/auth/login", json={"username": "carol", "password": "carol-password"})
    assert resp.status_code == 401
    assert admin.delete("/api/v1/users/carol").status_code == 204
    assert all(u["name"] != "carol" for u in admin.get("/api/v1/users").json())


def test_the_last_admin_cannot_be_demoted_disabled_or_deleted(stack, admin):
    admins = [u["name"] for u in admin.get("/api/v1/users").json() if u["role"] == "admin" and not u["disabled"]]
    for name in admins:
        if name != "admin":
            admin.patch(f"/api/v1/users/{name}", json={"role": "viewer"})
    resp = admin.patch("/api/v1/users/admin", json={"role": "viewer"})
    assert resp.status_code == 409 and "last enabled admin" in resp.json()["detail"]
    assert admin.delete("/api/v1/users/admin").status_code == 409
    for name in admins:
        if name != "admin":
            admin.patch(f"/api/v1/users/{name}", json={"role": "admin"})


def test_password_change_and_logout_everywhere(stack, admin):
    admin.post("/api/v1/users", json={"name": "dave", "password": "dave-password", "role": "viewer"})
    first, second = login(stack, "dave", "dave-password"), login(stack, "dave", "dave-password")
    wrong = first.post("/api/v1/auth/password", json={"current_password": "nope", "new_password": "dave-password-2"})
    assert wrong.status_code == 403 and wrong.json()["errors"][0]["field"] == "current_password"
    short = first.post("/api/v1/auth/password", json={"current_password": "dave-password", "new_password": "short"})
    assert short.status_code == 422
    ok = first.post("/api/v1/auth/password", json={"current_password": "dave-password", "new_password": "dave-password-2"})
    assert ok.status_code == 200
    first.headers["X-CSRF-Token"] = first.cookies["flint_csrf"]
    assert first.get("/api/v1/auth/me").status_code == 200  # this session goes on with a new cookie
    assert second.get("/api/v1/auth/me").status_code == 401  # the other one ended
    third = login(stack, "dave", "dave-password-2")
    assert third.post("/api/v1/auth/logout-all").status_code == 200
    assert first.get("/api/v1/auth/me").status_code == 401


def test_lockout_after_repeated_wrong_passwords(stack, admin):
    admin.post("/api/v1/users", json={"name": "erin", "password": "erin-password", "role": "viewer"})
    codes = [
        httpx.post(f"{stack}/api/v1/auth/login", json={"username": "erin", "password": f"wrong-{i}"}).status_code
        for i in range(5)
    ]
    assert codes == [401] * 5
    resp = httpx.post(f"{stack}/api/v1/auth/login", json={"username": "erin", "password": "erin-password"})
    assert resp.status_code == 429, "even the right password waits during a lockout"
    assert "try again in" in resp.json()["detail"]
    time.sleep(1.1)  # the first lockout lasts 1 s, then doubles
    assert httpx.post(f"{stack}/api/v1/auth/login", json={"username": "erin", "password": "erin-password"}).status_code == 200


def test_an_idle_session_expires(stack, admin):
    admin.post("/api/v1/users", json={"name": "frank", "password": "frank-password", "role": "viewer"})
    frank = login(stack, "frank", "frank-password")
    assert frank.get("/api/v1/auth/me").status_code == 200
    key = f"s.{_sha256(frank.cookies['flint_session'])}"

    async def age_session() -> None:  # as if frank had been away for three hours
        nc = await nats.connect(stack.env["FLINT_NATS_URL"])
        kv = await nc.jetstream().key_value(subjects.KV_SESSIONS)
        session = msgspec.json.decode((await kv.get(key)).value, type=Session)
        session.last_seen -= 3 * 3600
        await kv.put(key, msgspec.json.encode(session))
        await nc.close()

    run_async(age_session())
    assert frank.get("/api/v1/auth/me").status_code == 401


def test_a_revoked_token_is_refused_within_a_second(stack, admin):
    created = admin.post("/api/v1/auth/tokens", json={"name": "short-lived"}).json()
    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert httpx.get(f"{stack}/api/v1/auth/me", headers=bearer).status_code == 200
    admin.delete(f"/api/v1/auth/tokens/{created['id']}")
    t0 = time.monotonic()
    eventually(lambda: httpx.get(f"{stack}/api/v1/auth/me", headers=bearer).status_code == 401, timeout=1)
    assert time.monotonic() - t0 < 1


def test_a_token_cannot_outrank_its_owner(stack, admin):
    admin.post("/api/v1/users", json={"name": "gina", "password": "gina-password", "role": "operator"})
    gina = login(stack, "gina", "gina-password")
    resp = gina.post("/api/v1/auth/tokens", json={"name": "x", "role": "admin"})
    assert resp.status_code == 403 and resp.json()["errors"][0]["field"] == "role"


def test_every_change_leaves_an_audit_record(stack, admin):
    t0 = time.time() - 1
    admin.post("/api/v1/users", json={"name": "hank", "password": "hank-password", "role": "viewer"})
    admin.patch("/api/v1/users/hank", json={"role": "operator"})
    httpx.post(f"{stack}/api/v1/auth/login", json={"username": "hank", "password": "bad-password"})
    created = admin.post("/api/v1/auth/tokens", json={"name": "audited"}).json()
    admin.delete(f"/api/v1/auth/tokens/{created['id']}")
    admin.delete("/api/v1/users/hank")

    def records():
        recs = admin.get("/api/v1/audit", params={"since": t0}).json()
        return recs if len(recs) >= 6 else None

    recs = eventually(records, timeout=5, what="audit records")
    actions = {(r["user"], r["action"], r["result"]) for r in recs}
    assert ("admin", "POST /api/v1/users", "ok") in actions
    assert ("admin", "PATCH /api/v1/users/{name}", "ok") in actions
    assert ("hank", "POST /api/v1/auth/login", "refused") in actions
    assert ("admin", "DELETE /api/v1/auth/tokens/{token_id}", "ok") in actions
    assert ("admin", "DELETE /api/v1/users/{name}", "ok") in actions
    rec = next(r for r in recs if r["action"] == "PATCH /api/v1/users/{name}")
    assert rec["target"] == {"name": "hank"} and rec["remote"] == "127.0.0.1" and rec["status"] == 200
    only_hank = admin.get("/api/v1/audit", params={"since": t0, "user": "hank"}).json()
    assert only_hank and all(r["user"] == "hank" for r in only_hank)
    assert all("password" not in str(r) for r in recs), "no secret in the audit log"
