"""One table: every route's minimal role. A route missing here is refused (and a test fails)."""

from __future__ import annotations

PUBLIC = "public"
API = "/api/v1"

# (method, path template) -> minimal role: public | viewer | operator | admin
ROUTE_ROLES: dict[tuple[str, str], str] = {
    ("GET", f"{API}/health"): PUBLIC,
    ("POST", f"{API}/auth/login"): PUBLIC,
    ("POST", f"{API}/auth/logout"): "viewer",
    ("POST", f"{API}/auth/logout-all"): "viewer",
    ("POST", f"{API}/auth/password"): "viewer",
    ("GET", f"{API}/auth/me"): "viewer",
    ("POST", f"{API}/auth/tokens"): "viewer",
    ("GET", f"{API}/auth/tokens"): "viewer",
    ("DELETE", f"{API}/auth/tokens/{{token_id}}"): "viewer",
    ("GET", f"{API}/users"): "admin",
    ("POST", f"{API}/users"): "admin",
    ("PATCH", f"{API}/users/{{name}}"): "admin",
    ("DELETE", f"{API}/users/{{name}}"): "admin",
    ("GET", f"{API}/audit"): "admin",
    ("GET", f"{API}/health/details"): "viewer",
    ("GET", f"{API}/hosts"): "viewer",
    ("GET", f"{API}/hosts/{{host}}"): "viewer",
    ("GET", f"{API}/vms"): "viewer",
    ("GET", f"{API}/vms/{{vm_id}}"): "viewer",
    ("GET", f"{API}/vms/{{vm_id}}/metrics"): "viewer",
    ("POST", f"{API}/vms/{{vm_id}}/actions"): "operator",
    ("DELETE", f"{API}/vms/{{vm_id}}"): "operator",
    ("GET", f"{API}/jobs"): "viewer",
    ("GET", f"{API}/jobs/{{job_id}}"): "viewer",
    ("GET", f"{API}/storage/summary"): "viewer",
    ("GET", f"{API}/hosts/{{host}}/pools"): "viewer",
    ("GET", f"{API}/hosts/{{host}}/networks"): "viewer",
    ("GET", f"{API}/events"): "viewer",  # WebSocket
    ("GET", f"{API}/schema"): "viewer",
    ("GET", f"{API}/schema/openapi.json"): "viewer",
    ("GET", f"{API}/schema/{{path}}"): "viewer",
    ("GET", "/metrics"): "viewer",
    # The built frontend: the login page must load before anyone is logged in.
    ("GET", "/"): PUBLIC,
    ("GET", "/{path}"): PUBLIC,
}


def minimal_role(method: str, path_template: str) -> str | None:
    return ROUTE_ROLES.get((method, path_template))
