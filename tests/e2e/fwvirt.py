"""Firewall e2e helpers: a bridge without an address, a TCG VM with a NIC on it, the kernel's tables.

Network rule: the bridge never gets an IP address and no libvirt network is started; the guest (iPXE)
talks to nobody.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path

from lxml import etree

from tests.e2e import virt


def sh(*args: str, check: bool = True) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def make_bridge() -> str:
    name = f"flintfw{secrets.token_hex(2)}"  # at most 15 characters
    sh("ip", "link", "add", name, "type", "bridge")
    sh("ip", "link", "set", name, "up")
    return name


def remove_bridge(name: str) -> None:
    sh("ip", "link", "del", name, check=False)


def bridged_domain_xml(name: str, bridge: str, macs: list[str]) -> str:
    dom = etree.fromstring(virt.tiny_domain_xml(name).encode())
    features = etree.Element("features")  # ACPI: PCI hot-plug of a NIC needs it
    etree.SubElement(features, "acpi")
    dom.find("os").addnext(features)
    devices = dom.find("devices")
    for mac in macs:
        nic = etree.SubElement(devices, "interface", type="bridge")
        etree.SubElement(nic, "mac", address=mac)
        etree.SubElement(nic, "source", bridge=bridge)
        etree.SubElement(nic, "model", type="virtio")
    return etree.tostring(dom, encoding="unicode")


def random_mac() -> str:
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def define_bridged(name: str, bridge: str, tmp: Path, nics: int = 1) -> tuple[str, list[str]]:
    macs = [random_mac() for _ in range(nics)]
    path = tmp / f"{name}.xml"
    path.write_text(bridged_domain_xml(name, bridge, macs))
    virt.virsh("define", str(path))
    return virt.virsh("domuuid", name).strip(), macs


def tap_of(name: str, mac: str) -> str:
    """The host tap device (vnetN) of the running VM's NIC with ``mac``."""
    for line in virt.virsh("domiflist", name).splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[4].lower() == mac.lower():
            return fields[0]
    raise AssertionError(f"{name} has no running NIC {mac}:\n{virt.virsh('domiflist', name)}")


def chain_rules(tool: str, chain: str) -> list[str]:
    """The ``-A <chain> ...`` lines of iptables-save / ip6tables-save, in order."""
    out = sh(f"{tool}-save", "-t", "filter")
    return [line for line in out.splitlines() if line.startswith(f"-A {chain} ")]


def iptables(chain: str) -> list[str]:
    return chain_rules("iptables", chain)


def ip6tables(chain: str) -> list[str]:
    return chain_rules("ip6tables", chain)


def ebtables_nat() -> str:
    return sh("ebtables", "-t", "nat", "-L")


def has_chain(tool: str, chain: str) -> bool:
    return re.search(rf"^:{re.escape(chain)} ", sh(f"{tool}-save", "-t", "filter"), re.M) is not None


def filterrefs(name: str, inactive: bool) -> dict[str, str | None]:
    """MAC -> the filter each NIC references, in the persistent (inactive) or the live definition."""
    xml = virt.virsh("dumpxml", name, *(["--inactive"] if inactive else []))
    dom = etree.fromstring(xml.encode())
    out = {}
    for nic in dom.iter("interface"):
        ref = nic.find("filterref")
        out[nic.find("mac").get("address")] = None if ref is None else ref.get("filter")
    return out


def nwfilters() -> list[str]:
    return virt.virsh("nwfilter-list").split()


def undefine_filters(prefix: str) -> None:
    for name in nwfilters():
        if name.startswith(prefix):
            virt.virsh("nwfilter-undefine", name, check=False)
