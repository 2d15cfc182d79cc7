"""`flint network ...`: virtual networks and the host's interfaces through the API (FLINT_URL, FLINT_TOKEN)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import quote

from flint.cli.client import ApiError, Client

MODES = ("nat", "route", "isolated", "bridge", "macvtap")
MACVTAP_MODES = ("bridge", "vepa", "private", "passthrough")
SPEC_FIELDS = ("mode", "bridge", "interface", "macvtap_mode", "ipv4", "domain", "mtu")


def _out(args: argparse.Namespace, data: Any, render) -> int:
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(data))
    return 0


def _nets(args) -> str:
    return f"/hosts/{quote(args.host, safe='')}/networks"


def _net(args) -> str:
    return f"{_nets(args)}/{quote(args.name, safe='')}"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    from flint.cli.format import table

    return table(headers, rows)


def network_list(args, client: Client) -> int:
    nets = client.get(_nets(args))

    def render(ns):
        rows = [[n["name"], n.get("mode") or n["forward_mode"], "active" if n["active"] else "inactive",
                 "yes" if n["autostart"] else "no", n.get("bridge") or "-",
                 f"{n['ip_address']}/{n['prefix']}" if n.get("ip_address") else "-", "yes" if n["dhcp"] else "no"]
                for n in sorted(ns, key=lambda n: n["name"])]
        return _table(["name", "mode", "state", "autostart", "bridge", "address", "dhcp"], rows)

    return _out(args, nets, render)


def _render(n: dict) -> str:
    lines = [f"{n['name']}  ({n['mode']}, {'active' if n['active'] else 'inactive'}"
             f"{', autostart' if n['autostart'] else ''}{', restart to apply changes' if n['pending_restart'] else ''})",
             f"  host       {n['host']}", f"  uuid       {n['uuid']}"]
    if n.get("bridge"):
        lines.append(f"  bridge     {n['bridge']}")
    if n.get("interfaces"):
        lines.append(f"  interface  {', '.join(n['interfaces'])}" + (f" ({n['macvtap_mode']})" if n.get("macvtap_mode") else ""))
    elif n.get("interface"):
        lines.append(f"  interface  {n['interface']}")
    ip = n.get("ipv4")
    if ip:
        lines.append(f"  address    {ip['address']}")
        lines += [f"  dhcp       {r['start']} - {r['end']}" for r in ip["dhcp_ranges"]]
        lines += [f"  host       {h['mac']} -> {h['ip']}{' (' + h['name'] + ')' if h.get('name') else ''}"
                  for h in ip["dhcp_hosts"]]
        for key, label in (("tftp_root", "tftp root"), ("bootp_file", "boot file"), ("bootp_server", "pxe server")):
            if ip.get(key):
                lines.append(f"  {label:<10} {ip[key]}")
    for key in ("domain", "mtu"):
        if n.get(key):
            lines.append(f"  {key:<10} {n[key]}")
    lines.append(f"  pxe        {'ready' if n['pxe']['ready'] else 'not served'}: {n['pxe']['note']}")
    if n.get("vms"):
        lines.append(f"  vms        {', '.join(n['vms'])}")
    return "\n".join(lines)


def network_show(args, client: Client) -> int:
    return _out(args, client.get(_net(args)), _render)


def _range(text: str) -> dict:
    start, sep, end = text.partition("-")
    if not sep:
        raise ApiError(0, f"--dhcp-range {text!r}: write START-END, e.g. 192.168.100.100-192.168.100.199")
    return {"start": start.strip(), "end": end.strip()}


def _host(text: str) -> dict:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise ApiError(0, f"--dhcp-host {text!r}: write MAC,IP or MAC,IP,NAME")
    return {"mac": parts[0], "ip": parts[1], **({"name": parts[2]} if len(parts) == 3 else {})}


def _apply(spec: dict, args) -> dict:
    """Put the options given on the command line into ``spec`` (a body being built or edited)."""
    for key in ("mode", "bridge", "interface", "macvtap_mode", "domain", "mtu"):
        value = getattr(args, key, None)
        if value is not None:
            spec[key] = value
    if getattr(args, "no_ipv4", False):
        spec["ipv4"] = None
        return spec
    ipv4 = dict(spec.get("ipv4") or {})
    if args.address:
        ipv4["address"] = args.address
    if args.dhcp_range is not None:
        ipv4["dhcp_ranges"] = [_range(r) for r in args.dhcp_range if r]
    if args.dhcp_host is not None:
        ipv4["dhcp_hosts"] = [_host(h) for h in args.dhcp_host if h]
    for opt, key in (("tftp_root", "tftp_root"), ("boot_file", "bootp_file"), ("boot_server", "bootp_server")):
        value = getattr(args, opt)
        if value is not None:
            ipv4[key] = value or None  # an empty value removes the setting
    if ipv4:
        spec["ipv4"] = ipv4
    return spec


def network_create(args, client: Client) -> int:
    body = _apply({"name": args.name, "start": not args.no_start, "autostart": not args.no_autostart}, args)
    return _out(args, client.post(_nets(args), body), _render)


def network_edit(args, client: Client) -> int:
    """PUT takes the whole definition: start from the current one and change what the options say."""
    current = client.get(_net(args))
    spec = {k: current.get(k) for k in SPEC_FIELDS}
    spec["macvtap_mode"] = current.get("macvtap_mode") or "bridge"
    if args.mode and args.mode != current["mode"]:
        spec.update(bridge=None, interface=None)  # a host bridge or libvirt's own: neither carries over
        if args.mode in ("bridge", "macvtap"):
            spec.update(ipv4=None, domain=None)
    spec = {k: v for k, v in _apply(spec, args).items() if v is not None}
    return _out(args, client.call("PUT", _net(args), json=spec), _render)


def network_delete(args, client: Client) -> int:
    done = client.delete(_net(args), params={"force": str(args.force).lower()})
    return _out(args, done, lambda d: f"network {d['deleted']} deleted")


def network_action(args, client: Client) -> int:
    action = "noautostart" if args.action == "autostart" and args.off else args.action
    net = client.post(f"{_net(args)}/actions", {"action": action, "force": getattr(args, "force", False)})
    return _out(args, net, lambda n: f"{n['name']}: {action} done, now {'active' if n['active'] else 'inactive'}"
                                     f"{', autostart' if n['autostart'] else ''}")


def interface_list(args, client: Client) -> int:
    ifaces = client.get(f"/hosts/{quote(args.host, safe='')}/interfaces")

    def render(items):
        rows = [[i["name"], i["type"], i["state"], i.get("mac") or "-", ", ".join(i["addresses"]) or "-",
                 i.get("bridge") or ", ".join(i["members"]) or "-", i.get("network") or "-"] for i in items]
        return _table(["name", "type", "state", "mac", "addresses", "bridge/ports", "network"], rows)

    return _out(args, ifaces, render)


def _spec_options(p: argparse.ArgumentParser, editing: bool) -> None:
    p.add_argument("--mode", choices=MODES, default=None if editing else "isolated",
                   help="nat, route, isolated (default), bridge (a host bridge) or macvtap (a host interface)")
    p.add_argument("--bridge", help="bridge mode: the host bridge; nat/route/isolated: the bridge's name (default virbrN)")
    p.add_argument("--interface", help="macvtap: the host interface; nat/route: the interface traffic leaves by")
    p.add_argument("--macvtap-mode", choices=MACVTAP_MODES, default=None if editing else "bridge")
    p.add_argument("--address", help="the host's address with the prefix, e.g. 192.168.100.1/24")
    p.add_argument("--dhcp-range", action="append", metavar="START-END", help="a DHCP range (repeat)")
    p.add_argument("--dhcp-host", action="append", metavar="MAC,IP[,NAME]", help="a static lease (repeat)")
    p.add_argument("--tftp-root", help="PXE: a host directory served over TFTP")
    p.add_argument("--boot-file", help="PXE: the boot file DHCP hands out (pxelinux.0, ipxe.efi, ...)")
    p.add_argument("--boot-server", help="PXE: the TFTP server's address when it is not this network")
    p.add_argument("--domain", help="DNS domain of the guests")
    p.add_argument("--mtu", type=int)
    if editing:
        p.add_argument("--no-ipv4", action="store_true", help="remove the address (and with it DHCP and PXE)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    default_host = os.environ.get("FLINT_HOST", "local")

    def verb(parent, name, func, help_, name_arg: bool = True):
        p = parent.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.add_argument("--host", default=default_host, help=f"the host (default {default_host})")
        if name_arg:
            p.add_argument("name", help="network name")
        p.set_defaults(func=func, needs_client=True)
        return p

    net = sub.add_parser("network", help="virtual networks").add_subparsers(dest="verb", required=True)
    verb(net, "list", network_list, "list a host's networks", name_arg=False)
    verb(net, "show", network_show, "show one network: addresses, DHCP, PXE, VMs")
    p = verb(net, "create", network_create, "define, start and autostart a network")
    _spec_options(p, editing=False)
    p.add_argument("--no-start", action="store_true")
    p.add_argument("--no-autostart", action="store_true")
    p = verb(net, "edit", network_edit, "change a network (a running one takes it on its next start)")
    _spec_options(p, editing=True)
    p = verb(net, "delete", network_delete, "stop and undefine a network (refused while VMs use it)")
    p.add_argument("--force", action="store_true", help="although stopped VMs still name it")
    verb(net, "start", network_action, "start a network").set_defaults(action="start")
    p = verb(net, "stop", network_action, "stop a network (refused while running VMs are attached)")
    p.add_argument("--force", action="store_true", help="although running VMs are attached")
    p.set_defaults(action="stop")
    p = verb(net, "autostart", network_action, "start the network with the host (--off: do not)")
    p.add_argument("--off", action="store_true")
    p.set_defaults(action="autostart")
    verb(net, "interfaces", interface_list, "list the host's interfaces and bridges", name_arg=False)
