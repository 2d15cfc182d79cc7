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
    # agentless hosts: adding one hands Flint an SSH key to a hypervisor, so admins only
    ("POST", f"{API}/hosts"): "admin",
    ("DELETE", f"{API}/hosts/{{host}}"): "admin",
    ("GET", f"{API}/vms"): "viewer",
    ("GET", f"{API}/vms/{{vm_id}}"): "viewer",
    ("GET", f"{API}/vms/{{vm_id}}/metrics"): "viewer",
    ("POST", f"{API}/vms/{{vm_id}}/actions"): "operator",
    ("DELETE", f"{API}/vms/{{vm_id}}"): "operator",
    ("POST", f"{API}/vms"): "operator",
    ("PATCH", f"{API}/vms/{{vm_id}}"): "operator",
    ("POST", f"{API}/vms/{{vm_id}}/clone"): "operator",
    ("GET", f"{API}/vms/{{vm_id}}/snapshots"): "viewer",
    ("POST", f"{API}/vms/{{vm_id}}/snapshots"): "operator",
    ("POST", f"{API}/vms/{{vm_id}}/snapshots/{{name}}/revert"): "operator",
    ("DELETE", f"{API}/vms/{{vm_id}}/snapshots/{{name}}"): "operator",
    ("POST", f"{API}/vms/{{vm_id}}/disks"): "operator",
    ("DELETE", f"{API}/vms/{{vm_id}}/disks/{{target}}"): "operator",
    ("POST", f"{API}/vms/{{vm_id}}/nics"): "operator",
    ("DELETE", f"{API}/vms/{{vm_id}}/nics/{{mac}}"): "operator",
    ("GET", f"{API}/jobs"): "viewer",
    ("GET", f"{API}/jobs/{{job_id}}"): "viewer",
    ("GET", f"{API}/storage/summary"): "viewer",
    ("GET", f"{API}/hosts/{{host}}/pools"): "viewer",
    # storage: pools are made and removed by admins (they act on host devices); volumes by operators
    ("POST", f"{API}/hosts/{{host}}/pools"): "admin",
    ("GET", f"{API}/hosts/{{host}}/pools/{{pool}}"): "viewer",
    ("DELETE", f"{API}/hosts/{{host}}/pools/{{pool}}"): "admin",
    ("POST", f"{API}/hosts/{{host}}/pools/{{pool}}/actions"): "operator",  # `build` checks for admin
    ("GET", f"{API}/hosts/{{host}}/pools/{{pool}}/volumes"): "viewer",
    ("POST", f"{API}/hosts/{{host}}/pools/{{pool}}/volumes"): "operator",
    ("POST", f"{API}/hosts/{{host}}/pools/{{pool}}/volumes/import"): "operator",
    ("DELETE", f"{API}/hosts/{{host}}/pools/{{pool}}/volumes/{{vol}}"): "operator",
    ("PUT", f"{API}/hosts/{{host}}/pools/{{pool}}/volumes/{{vol}}/content"): "operator",
    ("POST", f"{API}/hosts/{{host}}/pools/{{pool}}/volumes/{{vol}}/resize"): "operator",
    ("GET", f"{API}/hosts/{{host}}/networks"): "viewer",
    # networks: made, edited and removed by admins (bridges, NAT rules, DHCP on the host); run by operators
    ("POST", f"{API}/hosts/{{host}}/networks"): "admin",
    ("GET", f"{API}/hosts/{{host}}/networks/{{name}}"): "viewer",
    ("PUT", f"{API}/hosts/{{host}}/networks/{{name}}"): "admin",
    ("DELETE", f"{API}/hosts/{{host}}/networks/{{name}}"): "admin",
    ("POST", f"{API}/hosts/{{host}}/networks/{{name}}/actions"): "operator",
    ("GET", f"{API}/hosts/{{host}}/interfaces"): "viewer",
    ("GET", f"{API}/events"): "viewer",  # WebSocket
    # Firewall: rulesets are global (any host, anyone's VMs), so changing one is for admins; choosing a VM's
    # rulesets is a change to that VM, like its power, for operators.
    ("GET", f"{API}/firewall/rulesets"): "viewer",
    ("POST", f"{API}/firewall/rulesets"): "admin",
    ("GET", f"{API}/firewall/rulesets/{{name}}"): "viewer",
    ("PUT", f"{API}/firewall/rulesets/{{name}}"): "admin",
    ("DELETE", f"{API}/firewall/rulesets/{{name}}"): "admin",
    ("GET", f"{API}/firewall/macros"): "viewer",
    ("GET", f"{API}/vms/{{vm_id}}/firewall"): "viewer",
    ("PUT", f"{API}/vms/{{vm_id}}/firewall"): "operator",
    ("GET", f"{API}/hosts/{{host}}/nwfilters"): "viewer",
    # Consoles: keyboard and screen of a VM are as good as changing it, so operators and up.
    ("POST", f"{API}/vms/{{vm_id}}/console"): "operator",
    ("GET", f"{API}/console"): "operator",  # WebSocket, with a ticket from the POST
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
