"""Every route the app serves has an entry in the role table (a new route without one fails here)."""

from __future__ import annotations

from flint.config import load_settings
from gateway.app import create_app
from gateway.authz import ROUTE_ROLES


def test_every_route_has_a_minimal_role():
    app = create_app(load_settings({"FLINT_HOST": "local"}))
    missing = []
    for route in app.routes:
        methods = getattr(route, "methods", None) or {"GET"}
        for method in methods:
            if method in ("HEAD", "OPTIONS"):
                continue
            if (method, route.path_format) not in ROUTE_ROLES:
                missing.append((method, route.path_format))
    assert not missing, f"routes without a role in gateway/authz.py: {missing}"


def test_no_table_entry_points_at_a_route_that_does_not_exist():
    app = create_app(load_settings({"FLINT_HOST": "local"}))
    served = {(m, r.path_format) for r in app.routes for m in (getattr(r, "methods", None) or {"GET"})}
    stale = [key for key in ROUTE_ROLES if key not in served]
    assert not stale, f"role table entries for routes that do not exist: {stale}"
