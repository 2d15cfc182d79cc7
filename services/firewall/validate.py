"""Checks on rulesets and VM firewall settings, each refusal naming its field (``rules[2].ports``).

Pure: no KV, no libvirt. ``normalize_ruleset`` returns what KV stores (ports as canonical text, CIDRs in
network form, macro names in their canonical spelling); ``FieldErrors`` carries every problem at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from flint.contracts.common import ServiceError
from flint.contracts.firewall import Rule, RulesetIn, VMFirewallSettings
from services.firewall.macros import MACROS, find_macro

RULESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
MAX_PORT_ITEMS = 16
MAX_COMMENT = 256
MAX_DESCRIPTION = 1000
PORT_PROTOCOLS = ("tcp", "udp")


class FieldErrors(ServiceError):
    """Several field problems at once; the first also fills ``field``/``message`` for one-line callers."""

    def __init__(self, code: int, errors: list[dict[str, str]]):
        first = errors[0]
        # One problem: its own sentence (the field travels beside it, also over NATS); several: all named.
        summary = first["message"] if len(errors) == 1 else "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(code, summary, first["field"])
        self.errors = errors


class _Collector:
    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def raise_if_any(self, code: int = 400) -> None:
        if self.errors:
            raise FieldErrors(code, self.errors)


def ruleset_name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "a ruleset needs a name"
    if not RULESET_NAME.fullmatch(name):
        return (f"{name!r} is not a valid ruleset name: 1-48 letters, digits, '-' and '_', "
                "starting with a letter or digit")
    return None


def check_ruleset_name(name: object, field: str = "name") -> str:
    problem = ruleset_name_problem(name)
    if problem:
        raise ServiceError(400, problem, field)
    return name  # type: ignore[return-value]


# ---- ports ---------------------------------------------------------------------------------------

def parse_ports(value: int | str | list | None) -> list[tuple[int, int]]:
    """``22``, ``"80,443"``, ``"1000-2000"``, ``[80, "8000-8080"]`` -> ``[(start, end), ...]``.

    Raises ``ValueError`` with a sentence for the user."""
    if value is None:
        return []
    items: list[int | str] = []
    if isinstance(value, bool):
        raise ValueError("ports must be a number, a list or text such as \"80,443\" or \"1000-2000\"")
    if isinstance(value, int):
        items = [value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                items.extend(part.strip() for part in item.split(","))
            else:
                items.append(item)
    else:
        raise ValueError("ports must be a number, a list or text such as \"80,443\" or \"1000-2000\"")
    if not items or items == [""]:
        raise ValueError("ports is empty: leave it out to match every port")
    if len(items) > MAX_PORT_ITEMS:
        raise ValueError(f"at most {MAX_PORT_ITEMS} ports or ranges in one rule (got {len(items)}): split the rule")
    ranges = []
    for item in items:
        ranges.append(_one_port_item(item))
    return ranges


def _one_port_item(item: int | str) -> tuple[int, int]:
    if isinstance(item, bool) or not isinstance(item, int | str):
        raise ValueError(f"{item!r} is not a port")
    if isinstance(item, int):
        start = end = item
    else:
        if item == "":
            raise ValueError("an empty entry in the port list")
        text = item.replace(" ", "")
        match = re.fullmatch(r"(\d{1,6})(?:-(\d{1,6}))?", text)
        if not match:
            raise ValueError(f"{item!r} is not a port or a range like 1000-2000")
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else start
    for port in (start, end):
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is out of range: ports are 1-65535")
    if end < start:
        raise ValueError(f"range {start}-{end} is reversed: write {end}-{start}")
    return start, end


def format_ports(ranges: Iterable[tuple[int, int]]) -> str:
    return ",".join(str(s) if s == e else f"{s}-{e}" for s, e in ranges)


# ---- addresses -----------------------------------------------------------------------------------

def parse_cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address (a /32 or /128) or a network; host bits must be zero ("10.0.0.0/8", not "10.0.0.5/8")."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("an empty address: leave the field out to match any address")
    text = value.strip()
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            net = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"{text} has host bits set: did you mean {net}?") from None
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address or CIDR (like 10.0.0.0/8 or fd00::/64)") from None


def cidr_family(value: str | None) -> int | None:
    return None if value is None else parse_cidr(value).version


# ---- rules ---------------------------------------------------------------------------------------

def normalize_rule(rule: Rule, field: str, errors: _Collector) -> Rule:
    """The rule as stored: errors are added to ``errors`` (the returned rule is then meaningless)."""
    macro_name = None
    protocol = rule.protocol
    ports_text = None
    if rule.macro is not None:
        macro = find_macro(rule.macro)
        if macro is None:
            known = ", ".join(m.name for m in MACROS)
            errors.add(f"{field}.macro", f"unknown macro {rule.macro!r}; known macros: {known}")
        else:
            macro_name = macro.name
        if rule.protocol is not None:
            errors.add(f"{field}.protocol", "a macro sets the protocol: leave protocol out, or drop the macro")
        if rule.ports is not None:
            errors.add(f"{field}.ports", "a macro sets the ports: leave ports out, or drop the macro")
        protocol = None
    else:
        protocol = protocol or "all"
        if rule.ports is not None:
            if protocol not in PORT_PROTOCOLS:
                errors.add(f"{field}.ports", f"ports need protocol tcp or udp; this rule's protocol is {protocol}")
            else:
                try:
                    ports_text = format_ports(parse_ports(rule.ports))
                except ValueError as exc:
                    errors.add(f"{field}.ports", str(exc))

    addresses: dict[str, str | None] = {"source": None, "destination": None}
    families: dict[str, int] = {}
    for name in ("source", "destination"):
        value = getattr(rule, name)
        if value is None:
            continue
        try:
            net = parse_cidr(value)
        except ValueError as exc:
            errors.add(f"{field}.{name}", str(exc))
            continue
        addresses[name] = str(net)
        families[name] = net.version
    if len(set(families.values())) > 1:
        errors.add(f"{field}.destination",
                   f"source is IPv{families['source']} and destination IPv{families['destination']}: "
                   "one rule matches one address family")

    comment = rule.comment or ""
    if len(comment) > MAX_COMMENT:
        errors.add(f"{field}.comment", f"at most {MAX_COMMENT} characters (got {len(comment)})")
    elif any(ord(c) < 32 or ord(c) == 127 for c in comment):
        errors.add(f"{field}.comment", "control characters (newlines, tabs, ...) are not allowed")

    return Rule(direction=rule.direction, action=rule.action, protocol=protocol, ports=ports_text,
                source=addresses["source"], destination=addresses["destination"], macro=macro_name,
                comment=comment, enabled=rule.enabled)


def normalize_ruleset(body: RulesetIn, name: str | None = None) -> tuple[str, str, list[Rule]]:
    """Check a ruleset body; ``name`` comes from the URL on PUT (the body may repeat it, not change it)."""
    errors = _Collector()
    final = name if name is not None else body.name
    problem = ruleset_name_problem(final)
    if problem:
        errors.add("name", problem)
    elif name is not None and body.name is not None and body.name != name:
        errors.add("name", f"the body names {body.name!r} but the URL {name!r}: a ruleset cannot be renamed")
    description = body.description or ""
    if len(description) > MAX_DESCRIPTION:
        errors.add("description", f"at most {MAX_DESCRIPTION} characters (got {len(description)})")
    rules = [normalize_rule(rule, f"rules[{i}]", errors) for i, rule in enumerate(body.rules)]
    errors.raise_if_any(400)
    return final, description, rules  # type: ignore[return-value]


# ---- VM settings ---------------------------------------------------------------------------------

def normalize_vm_settings(settings: VMFirewallSettings, known_rulesets: Iterable[str],
                          macs: Iterable[str]) -> VMFirewallSettings:
    """Check a VM's settings against the rulesets that exist and the VM's NICs."""
    errors = _Collector()
    known = set(known_rulesets)
    seen: set[str] = set()
    for i, name in enumerate(settings.rulesets):
        problem = ruleset_name_problem(name)
        if problem:
            errors.add(f"rulesets[{i}]", problem)
        elif name in seen:
            errors.add(f"rulesets[{i}]", f"{name!r} is listed twice")
        seen.add(name)
    errors.raise_if_any(400)
    for i, name in enumerate(settings.rulesets):
        if name not in known:
            errors.add(f"rulesets[{i}]", f"no ruleset named {name!r}")
    errors.raise_if_any(422)

    vm_macs = {m.lower() for m in macs}
    addresses: dict[str, list[str]] = {}
    for mac, values in settings.addresses.items():
        key = mac.strip().lower()
        field = f"addresses.{mac}"
        if not MAC.fullmatch(key):
            errors.add(field, f"{mac!r} is not a MAC address like 52:54:00:12:34:56")
            continue
        if key not in vm_macs:
            errors.add(field, f"the VM has no NIC with MAC {key} (its NICs: {', '.join(sorted(vm_macs)) or 'none'})")
            continue
        clean = []
        for j, value in enumerate(values):
            try:
                address = ipaddress.ip_address(value.strip())
            except ValueError:
                errors.add(f"{field}[{j}]", f"{value!r} is not an IP address")
                continue
            if address.version != 4:
                errors.add(f"{field}[{j}]", "anti-spoofing (libvirt's clean-traffic) checks IPv4 addresses only")
                continue
            clean.append(str(address))
        if clean:
            addresses[key] = clean
    errors.raise_if_any(400)
    return VMFirewallSettings(rulesets=list(settings.rulesets), anti_spoofing=settings.anti_spoofing,
                              default_policy=settings.default_policy, addresses=addresses)
