"""API verbs of the `flint` command: vm, host, storage, token, health. Each has --json for scripts."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flint.cli.client import ApiError, Client, die
from flint.cli.format import size, table

VM_ACTIONS = ("start", "shutdown", "reboot", "reset", "poweroff", "pause", "resume")


def _out(args: argparse.Namespace, data: Any, render) -> int:
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(data))
    return 0


def _find_vm(client: Client, ref: str, host: str | None = None) -> dict:
    """A VM by UUID or by name (a name on several hosts needs --host)."""
    page = client.get("/vms", params={"limit": 5000, **({"host": host} if host else {})})
    matches = [v for v in page["items"] if v["id"] == ref or v["name"] == ref]
    if not matches:
        raise ApiError(404, f"no VM named or with id {ref!r}" + (f" on host {host}" if host else ""))
    if len(matches) > 1:
        hosts = ", ".join(sorted(v["host"] for v in matches))
        raise ApiError(409, f"VM name {ref!r} exists on several hosts ({hosts}); add --host")
    return matches[0]


def vm_list(args, client: Client) -> int:
    params = {k: v for k, v in {"host": args.host, "state": args.state, "q": args.search}.items() if v}
    page = client.get("/vms", params={"limit": 5000, **params})

    def render(p):
        rows = [
            (v["name"], v["host"], v["state"], v["vcpus"], f"{v['memory_mib']} MiB",
             ", ".join(a for n in v["nics"] for a in n["addresses"]) or "-", v["id"])
            for v in p["items"]
        ]
        return table(["name", "host", "state", "vcpus", "memory", "addresses", "id"], rows)

    return _out(args, page, render)


def vm_show(args, client: Client) -> int:
    vm = client.get(f"/vms/{_find_vm(client, args.vm, args.host)['id']}")

    def render(v):
        lines = [
            f"{v['name']}  ({v['id']})",
            f"  host      {v['host']}",
            f"  state     {v['state']}" + (f" ({v['state_reason']})" if v.get("state_reason") else ""),
            f"  vcpus     {v['vcpus']}",
            f"  memory    {v['memory_mib']} MiB",
            f"  firmware  {v['firmware']}",
            f"  autostart {'yes' if v['autostart'] else 'no'}",
        ]
        if v.get("description"):
            lines.append(f"  about     {v['description']}")
        for d in v["disks"]:
            where = f"{d['pool']}/{d['volume']}" if d.get("pool") else d.get("path") or "-"
            lines.append(f"  disk      {d['target']} {d['device']} {where} {size(d.get('capacity'))}")
        for n in v["nics"]:
            src = n.get("network") or n.get("bridge") or "-"
            lines.append(f"  nic       {n['mac']} {n.get('model') or ''} on {src} {' '.join(n['addresses'])}")
        for g in v["graphics"]:
            lines.append(f"  graphics  {g['type']} {g.get('listen') or ''}:{g.get('port')}")
        return "\n".join(lines)

    return _out(args, vm, render)


def vm_action(args, client: Client) -> int:
    vm = _find_vm(client, args.vm, args.host)
    result = client.post(f"/vms/{vm['id']}/actions", {"action": args.action})
    return _out(args, result, lambda r: f"{vm['name']}: {args.action} done, now {r['state']}")


def vm_console(args, client: Client) -> int:
    from flint.cli.console import serial_console

    return serial_console(_find_vm(client, args.vm, args.host), client)


def host_list(args, client: Client) -> int:
    hosts = client.get("/hosts")

    def render(hs):
        rows = [
            (h["name"], h["state"], h["hostname"], h["cpus"], size(h["memory_total_bytes"]),
             size(h["memory_free_bytes"]), h["libvirt_version"], h["virt_type"], h["uri"])
            for h in hs
        ]
        return table(["name", "state", "hostname", "cpus", "memory", "free", "libvirt", "virt", "uri"], rows)

    return _out(args, hosts, render)


def _read_text(path: str, what: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path) as f:  # noqa: PTH123
            return f.read()
    except OSError as exc:
        raise ApiError(0, f"cannot read {what} {path}: {exc.strerror or exc}") from None


def host_add(args, client: Client) -> int:
    body: dict[str, Any] = {"name": args.name, "uri": args.uri}
    if args.key:
        body["ssh_private_key"] = _read_text(args.key, "the key")
    if args.known_hosts:
        body["known_hosts"] = _read_text(args.known_hosts, "known_hosts")
    reg = client.post("/hosts", body)
    keys = ", ".join(reg.get("host_keys") or []) or "none (test driver)"
    return _out(args, reg, lambda r: f"host {r['name']} added ({r['uri']}); host keys: {keys}\n"
                "its services start now: `flint host list` shows it up within seconds")


def host_remove(args, client: Client) -> int:
    client.delete(f"/hosts/{args.name}")
    return _out(args, {"name": args.name, "removed": True}, lambda r: f"host {r['name']} removed")


def storage_summary(args, client: Client) -> int:
    summary = client.get("/storage/summary")

    def render(s):
        o = s["overall"]
        lines = [f"overall: {size(o['used'])} used of {size(o['capacity'])}, {size(o['free'])} free"]
        for h in s["hosts"]:
            lines.append(f"host {h['host']}: {size(h['used'])} used of {size(h['capacity'])}, {size(h['free'])} free")
            for g in h["groups"]:
                lines.append(f"  {g['label']}: {size(g['used'])} used of {size(g['capacity'])}")
                for p in g["pools"]:
                    lines.append(f"    pool {p['name']} ({p['type']}) holds {size(p['allocation'])}")
        return "\n".join(lines)

    return _out(args, summary, render)


def health(args, client: Client) -> int:
    details = client.get("/health/details")

    def render(d):
        lines = [f"status: {d['status']}", f"nats: {'ok' if d['nats']['ok'] else 'DOWN'} {d['nats']['url']}"]
        for h in d["hosts"]:
            lv = h["libvirt"]
            lines.append(f"host {h['name']}: libvirt {lv.get('version') or '-'} {'ok' if lv['ok'] else 'DOWN'}, virt {h['virt_type']}")
            for name, c in h["services"].items():
                lines.append(f"  {name}: {'ok' if c['ok'] else 'DOWN ' + (c.get('detail') or '')}")
        return "\n".join(lines)

    code = _out(args, details, render)
    return code if details["status"] == "ok" else 1


def token_create(args, client: Client) -> int:
    body = {"name": args.name, "role": args.role, "expires_in_days": args.expires_in_days}
    created = client.post("/auth/tokens", body)
    return _out(args, created, lambda t: f"token {t['id']} ({t['role']}), shown once:\n{t['token']}")


def token_list(args, client: Client) -> int:
    tokens = client.get("/auth/tokens")
    return _out(args, tokens, lambda ts: table(["id", "name", "role", "owner"], [(t["id"], t["name"], t["role"], t["owner"]) for t in ts]))


def token_revoke(args, client: Client) -> int:
    client.delete(f"/auth/tokens/{args.id}")
    return _out(args, {"revoked": args.id}, lambda _: f"token {args.id} revoked")


def user_list(args, client: Client) -> int:
    users = client.get("/users")
    return _out(args, users, lambda us: table(["name", "role", "disabled"], [(u["name"], u["role"], u["disabled"]) for u in us]))


def _password(args) -> str:
    """From stdin when piped (scripts), else asked twice without echo."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ApiError(0, "the passwords differ")
    return first


def user_create(args, client: Client) -> int:
    user = client.post("/users", {"name": args.name, "role": args.role, "password": _password(args)})
    return _out(args, user, lambda u: f"user {u['name']} ({u['role']}) created")


def user_set(args, client: Client) -> int:
    body: dict = {}
    if args.role:
        body["role"] = args.role
    if args.disable or args.enable:
        body["disabled"] = bool(args.disable)
    if args.password:
        body["password"] = _password(args)
    if not body:
        raise ApiError(0, "nothing to change: give --role, --disable/--enable or --password")
    user = client.call("PATCH", f"/users/{args.name}", json=body)
    return _out(args, user, lambda u: f"user {u['name']}: {u['role']}{', disabled' if u['disabled'] else ''}")


def user_delete(args, client: Client) -> int:
    client.delete(f"/users/{args.name}")
    return _out(args, {"deleted": args.name}, lambda _: f"user {args.name} deleted")


def audit_list(args, client: Client) -> int:
    import time as _time

    params = {"limit": args.limit, "since": _time.time() - args.hours * 3600}
    if args.user:
        params["user"] = args.user
    records = client.get("/audit", params=params)

    def render(rs):
        rows = [
            (_time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(r["ts"])), r["user"], r["remote"], r["action"],
             " ".join(f"{k}={v}" for k, v in r["target"].items()), f"{r['result']} {r['status']}", r.get("job_id") or "")
            for r in rs
        ]
        return table(["time", "user", "from", "action", "target", "result", "job"], rows)

    return _out(args, records, render)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    def verb(parent, name, func, help_):
        p = parent.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.set_defaults(func=func, needs_client=True)
        return p

    vm = sub.add_parser("vm", help="virtual machines").add_subparsers(dest="verb", required=True)
    from flint.cli import vm_create

    vm_create.add_parser(vm, verb)
    from flint.cli import vm_edit

    vm_edit.add_parsers(sub, vm, verb)
    p = verb(vm, "list", vm_list, "list VMs")
    p.add_argument("--host")
    p.add_argument("--state")
    p.add_argument("--search", "-q")
    p = verb(vm, "show", vm_show, "show one VM")
    p.add_argument("vm", help="name or UUID")
    p.add_argument("--host")
    for action in VM_ACTIONS:
        p = verb(vm, action, vm_action, f"{action} a VM")
        p.add_argument("vm", help="name or UUID")
        p.add_argument("--host")
        p.set_defaults(action=action)
    p = verb(vm, "console", vm_console, "the VM's serial console in this terminal (Ctrl-] ends it)")
    p.add_argument("vm", help="name or UUID")
    p.add_argument("--host")

    host = sub.add_parser("host", help="hypervisor hosts").add_subparsers(dest="verb", required=True)
    verb(host, "list", host_list, "list hosts")
    p = verb(host, "add", host_add, "add an agentless host reached over SSH (admin)")
    p.add_argument("name", help="short name: 1-63 of a-z, 0-9 and '-'")
    p.add_argument("--uri", required=True, help="qemu+ssh://user@host[:port]/system (or test:///file.xml)")
    p.add_argument("--key", help="private key file for the SSH login (unencrypted)")
    p.add_argument("--known-hosts", help="known_hosts file with the host's key (e.g. checked ssh-keyscan output)")
    p = verb(host, "remove", host_remove, "remove an agentless host: stops its services, forgets its VMs here")
    p.add_argument("name")
    storage = sub.add_parser("storage", help="storage figures").add_subparsers(dest="verb", required=True)
    verb(storage, "summary", storage_summary, "capacity, used and free per host and filesystem")
    verb(sub, "health", health, "health of NATS, libvirt and every service")

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="verb", required=True)
    p = verb(token, "create", token_create, "create a token (shown once)")
    p.add_argument("name")
    p.add_argument("--role", default="viewer", choices=["viewer", "operator", "admin"])
    p.add_argument("--expires-in-days", type=float, default=None)
    verb(token, "list", token_list, "list tokens")
    p = verb(token, "revoke", token_revoke, "revoke a token")
    p.add_argument("id")

    user = sub.add_parser("user", help="users (admin)").add_subparsers(dest="verb", required=True)
    verb(user, "list", user_list, "list users")
    p = verb(user, "create", user_create, "create a user (password from stdin or asked)")
    p.add_argument("name")
    p.add_argument("--role", default="viewer", choices=["viewer", "operator", "admin"])
    p = verb(user, "set", user_set, "change a user's role, password or state")
    p.add_argument("name")
    p.add_argument("--role", choices=["viewer", "operator", "admin"])
    p.add_argument("--disable", action="store_true")
    p.add_argument("--enable", action="store_true")
    p.add_argument("--password", action="store_true", help="set a new password (from stdin or asked)")
    p = verb(user, "delete", user_delete, "delete a user and their tokens")
    p.add_argument("name")

    p = verb(sub, "audit", audit_list, "who changed what (admin)")
    p.add_argument("--user")
    p.add_argument("--hours", type=float, default=24)
    p.add_argument("--limit", type=int, default=200)


def run_verb(args) -> int:
    try:
        return args.func(args, Client())
    except ApiError as exc:
        return die(exc.detail, 1)
