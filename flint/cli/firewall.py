"""`flint firewall …`: rulesets (list, show, create, delete, rule edits with If-Match), macros, a VM's
firewall and a host's nwfilters.

Rule edits read the ruleset, change it and write it back with the revision they read: if somebody else
changed it meanwhile the gateway answers 412 and the command says so (run it again).
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from flint.cli.client import ApiError, Client
from flint.cli.format import table

RS = "/firewall/rulesets"


def _out(args, data: Any, render) -> int:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(render(data))
    return 0


def _find_vm(client: Client, ref: str, host: str | None) -> dict:
    from flint.cli.verbs import _find_vm

    return _find_vm(client, ref, host)


# ---- rule text -----------------------------------------------------------------------------------

RULE_HELP = ("DIRECTION ACTION (MACRO | PROTOCOL [PORTS]) [from CIDR] [to CIDR] [disabled] [# comment], "
             "e.g. 'in accept SSH from 10.0.0.0/8', 'in accept tcp 80,443', 'out drop udp 53', 'in drop all'")


def parse_rule(text: str) -> dict:
    """One rule from words, as `--rule` and `add-rule` take it."""
    text, _, comment = text.partition("#")
    words = shlex.split(text)
    if len(words) < 3:
        raise ApiError(0, f"rule {text.strip()!r}: expected {RULE_HELP}")
    rule: dict[str, Any] = {"direction": words[0].lower(), "action": words[1].lower()}
    rest = words[2:]
    what = rest.pop(0)
    if what.lower() in ("tcp", "udp", "icmp", "all"):
        rule["protocol"] = what.lower()
        if rest and rest[0].lower() not in ("from", "to", "disabled"):
            rule["ports"] = rest.pop(0)
    else:
        rule["macro"] = what
    while rest:
        word = rest.pop(0).lower()
        if word in ("from", "to") and rest:
            rule["source" if word == "from" else "destination"] = rest.pop(0)
        elif word == "disabled":
            rule["enabled"] = False
        else:
            raise ApiError(0, f"rule {text.strip()!r}: unexpected {word!r}; expected {RULE_HELP}")
    if comment.strip():
        rule["comment"] = comment.strip()
    return rule


def describe_rule(rule: dict) -> str:
    what = rule.get("macro") or " ".join(x for x in (rule.get("protocol") or "all", rule.get("ports")) if x)
    parts = [rule["direction"], rule["action"], what]
    if rule.get("source"):
        parts += ["from", rule["source"]]
    if rule.get("destination"):
        parts += ["to", rule["destination"]]
    if not rule.get("enabled", True):
        parts.append("disabled")
    text = " ".join(parts)
    return f"{text}  # {rule['comment']}" if rule.get("comment") else text


# ---- rulesets ------------------------------------------------------------------------------------

def ruleset_list(args, client: Client) -> int:
    rulesets = client.get(RS)

    def render(items):
        rows = [(r["name"], len(r["rules"]), len(r["used_by"]), r["revision"], r["description"]) for r in items]
        return table(["name", "rules", "vms", "revision", "description"], rows)

    return _out(args, rulesets, render)


def _render_ruleset(r: dict) -> str:
    lines = [f"{r['name']}  (revision {r['revision']}, by {r.get('updated_by') or '-'})"]
    if r.get("description"):
        lines.append(f"  {r['description']}")
    for i, rule in enumerate(r["rules"]):
        lines.append(f"  {i:>3}  {describe_rule(rule)}")
    if not r["rules"]:
        lines.append("  (no rules)")
    used = ", ".join(f"{u['host']}/{u['name'] or u['id']}" for u in r["used_by"]) or "no VM"
    lines.append(f"  used by: {used}")
    return "\n".join(lines)


def ruleset_show(args, client: Client) -> int:
    return _out(args, client.get(f"{RS}/{args.name}"), _render_ruleset)


def _read_rules(args) -> list[dict]:
    rules = [parse_rule(text) for text in args.rule or []]
    if args.file:
        with open(args.file) as fh:
            data = json.load(fh)
        rules += data["rules"] if isinstance(data, dict) else data
    return rules


def ruleset_create(args, client: Client) -> int:
    body = {"name": args.name, "description": args.description or "", "rules": _read_rules(args)}
    return _out(args, client.post(RS, body), _render_ruleset)


def ruleset_delete(args, client: Client) -> int:
    client.delete(f"{RS}/{args.name}")
    return _out(args, {"deleted": args.name}, lambda _: f"ruleset {args.name} deleted")


def _edit(args, client: Client, change) -> int:
    current = client.get(f"{RS}/{args.name}")
    rules = list(current["rules"])
    description = current["description"]
    result = change(rules)
    if isinstance(result, str):
        description = result
    try:
        updated = client.call("PUT", f"{RS}/{args.name}", json={"description": description, "rules": rules},
                              headers={"If-Match": f'"{current["revision"]}"'})
    except ApiError as exc:
        if exc.status == 412:
            raise ApiError(412, f"{exc.detail} (changed by someone else while you edited: run the command again)") from None
        raise
    return _out(args, updated, _render_ruleset)


def _index(rules: list, index: int, what: str = "rule") -> int:
    if not -len(rules) <= index < len(rules):
        raise ApiError(0, f"no {what} {index}: the ruleset has {len(rules)} rules (0-{len(rules) - 1})")
    return index % len(rules)


def ruleset_add_rule(args, client: Client) -> int:
    rule = parse_rule(args.rule)

    def change(rules):
        rules.insert(len(rules) if args.position is None else args.position, rule)

    return _edit(args, client, change)


def ruleset_remove_rule(args, client: Client) -> int:
    def change(rules):
        rules.pop(_index(rules, args.index))

    return _edit(args, client, change)


def ruleset_move_rule(args, client: Client) -> int:
    def change(rules):
        rule = rules.pop(_index(rules, args.index))
        rules.insert(max(0, min(args.to, len(rules))), rule)

    return _edit(args, client, change)


def ruleset_toggle_rule(args, client: Client) -> int:
    def change(rules):
        i = _index(rules, args.index)
        rules[i] = {**rules[i], "enabled": args.enable}

    return _edit(args, client, change)


def ruleset_describe(args, client: Client) -> int:
    return _edit(args, client, lambda _rules: args.description)


def macros(args, client: Client) -> int:
    items = client.get("/firewall/macros")

    def render(ms):
        rows = [(m["name"], ", ".join(f"{e['protocol']} {e['ports'] or ''}".strip() if e["icmp_type"] is None
                                     else f"{e['protocol']} type {e['icmp_type']}" for e in m["entries"]),
                 m["description"]) for m in ms]
        return table(["macro", "matches", "description"], rows)

    return _out(args, items, render)


# ---- VMs and hosts -------------------------------------------------------------------------------

def _render_vm(fw: dict) -> str:
    s = fw["settings"]
    lines = [
        f"{fw['name']} on {fw['host']}  ({fw['id']})",
        f"  rulesets        {', '.join(s['rulesets']) or '-'}",
        f"  anti-spoofing   {'on' if s['anti_spoofing'] else 'off'}",
        f"  default policy  {s['default_policy']}",
    ]
    if fw.get("missing_rulesets"):
        lines.append(f"  MISSING         {', '.join(fw['missing_rulesets'])} (deleted: not applied)")
    for nic in fw["nics"]:
        state = "filtered" if nic["attached"] else "not filtered"
        if nic["live"] is False and nic["attached"]:
            state += " (not yet on the running VM)"
        extra = f" allows {', '.join(nic['ip_addresses'])}" if nic["ip_addresses"] else ""
        note = f"  [{nic['note']}]" if nic["note"] else ""
        lines.append(f"  nic {nic['mac']} {nic.get('source') or ''}: {state}{extra}{note}")
    return "\n".join(lines)


def vm_show(args, client: Client) -> int:
    vm = _find_vm(client, args.vm, args.host)
    return _out(args, client.get(f"/vms/{vm['id']}/firewall"), _render_vm)


def vm_set(args, client: Client) -> int:
    vm = _find_vm(client, args.vm, args.host)
    current = client.get(f"/vms/{vm['id']}/firewall")["settings"]
    settings = dict(current)
    if args.clear:
        settings = {"rulesets": [], "anti_spoofing": False, "default_policy": "accept", "addresses": {}}
    if args.ruleset is not None:
        settings["rulesets"] = [r for item in args.ruleset for r in item.split(",") if r]
    if args.no_rulesets:
        settings["rulesets"] = []
    if args.anti_spoofing is not None:
        settings["anti_spoofing"] = args.anti_spoofing
    if args.default_policy:
        settings["default_policy"] = args.default_policy
    for item in args.address or []:
        mac, sep, ips = item.partition("=")
        if not sep:
            raise ApiError(0, f"--address {item!r}: expected MAC=IP[,IP...]")
        settings.setdefault("addresses", {})[mac.lower()] = [ip for ip in ips.split(",") if ip]
    return _out(args, client.call("PUT", f"/vms/{vm['id']}/firewall", json=settings), _render_vm)


def nwfilters(args, client: Client) -> int:
    listing = client.get(f"/hosts/{args.host}/nwfilters")

    def render(data):
        rows = [(f["name"], f["owner"], f["chain"] or "-", f["rules"], ", ".join(f["references"]) or "-")
                for f in data["filters"]]
        return table(["name", "owner", "chain", "rules", "references"], rows)

    return _out(args, listing, render)


# ---- parsers -------------------------------------------------------------------------------------

def add_parsers(sub: argparse._SubParsersAction) -> None:
    def verb(parent, name, func, help_):
        p = parent.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.set_defaults(func=func, needs_client=True)
        return p

    fw = sub.add_parser("firewall", help="rulesets, macros and VM firewalls").add_subparsers(dest="area", required=True)
    rs = fw.add_parser("ruleset", help="rulesets (shared by VMs on every host)").add_subparsers(dest="verb", required=True)
    verb(rs, "list", ruleset_list, "list rulesets")
    p = verb(rs, "show", ruleset_show, "show a ruleset's rules, numbered")
    p.add_argument("name")
    p = verb(rs, "create", ruleset_create, "create a ruleset")
    p.add_argument("name")
    p.add_argument("--description", "-d")
    p.add_argument("--rule", "-r", action="append", help=RULE_HELP)
    p.add_argument("--file", "-f", help="JSON file with {\"rules\": [...]} (API rule objects)")
    p = verb(rs, "delete", ruleset_delete, "delete a ruleset no VM uses")
    p.add_argument("name")
    p = verb(rs, "add-rule", ruleset_add_rule, "add a rule (at the end, or at --position)")
    p.add_argument("name")
    p.add_argument("rule", help=RULE_HELP)
    p.add_argument("--position", "-p", type=int, help="insert before this rule number (0 = first)")
    p = verb(rs, "remove-rule", ruleset_remove_rule, "remove rule number INDEX")
    p.add_argument("name")
    p.add_argument("index", type=int)
    p = verb(rs, "move-rule", ruleset_move_rule, "move rule INDEX to position TO")
    p.add_argument("name")
    p.add_argument("index", type=int)
    p.add_argument("to", type=int)
    for name, enable in (("enable-rule", True), ("disable-rule", False)):
        p = verb(rs, name, ruleset_toggle_rule, f"{name.split('-')[0]} rule number INDEX")
        p.add_argument("name")
        p.add_argument("index", type=int)
        p.set_defaults(enable=enable)
    p = verb(rs, "describe", ruleset_describe, "set a ruleset's description")
    p.add_argument("name")
    p.add_argument("description")
    verb(fw, "macros", macros, "list the macros rules can use")

    vm = fw.add_parser("vm", help="a VM's firewall").add_subparsers(dest="verb", required=True)
    p = verb(vm, "show", vm_show, "show a VM's rulesets, anti-spoofing, policy and NICs")
    p.add_argument("vm", help="name or UUID")
    p.add_argument("--host")
    p = verb(vm, "set", vm_set, "change a VM's firewall (live and persistent)")
    p.add_argument("vm", help="name or UUID")
    p.add_argument("--host")
    p.add_argument("--ruleset", "-r", action="append", help="ruleset (repeat or comma-separate; order matters)")
    p.add_argument("--no-rulesets", action="store_true", help="take every ruleset off")
    p.add_argument("--anti-spoofing", dest="anti_spoofing", action="store_true", default=None)
    p.add_argument("--no-anti-spoofing", dest="anti_spoofing", action="store_false")
    p.add_argument("--default-policy", choices=["accept", "drop"])
    p.add_argument("--address", action="append", metavar="MAC=IP[,IP]", help="addresses anti-spoofing allows")
    p.add_argument("--clear", action="store_true", help="remove every filter from the VM")
    p = verb(fw, "nwfilters", nwfilters, "a host's libvirt nwfilters (read-only)")
    p.add_argument("--host", default="local")
