"""Build the VM, Pool and Network documents from parsed libvirt XML plus the few live facts XML lacks.

Pure: the libvirt calls that gather those facts live in reader.py. State and reason names follow
libvirt's enums (virDomainState and the virDomain<State>Reason enums), lower case, dashes for spaces.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flint.contracts.inventory import VM, Disk, Graphics, Network, Nic, Pool
from flint.xml.domain import Domain
from flint.xml.network import Network as NetworkXml
from flint.xml.pool import StoragePool

from .storage import FILESYSTEM_POOL_TYPES, group_pool

STATE_NAMES = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended")

_REASONS: dict[str, tuple[str, ...]] = {
    "running": ("unknown", "booted", "migrated", "restored", "from-snapshot", "unpaused", "migration-canceled",
                "save-canceled", "wakeup", "crashed", "postcopy", "postcopy-failed"),
    "paused": ("unknown", "user", "migration", "save", "dump", "ioerror", "watchdog", "from-snapshot",
               "shutting-down", "snapshot", "crashed", "starting-up", "postcopy", "postcopy-failed", "api-error"),
    "shutdown": ("unknown", "user"),
    "shutoff": ("unknown", "shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from-snapshot",
                "daemon"),
    "crashed": ("unknown", "panicked"),
}

POOL_STATES = ("inactive", "building", "running", "degraded", "inaccessible")


def state_name(state: int) -> str:
    return STATE_NAMES[state] if 0 <= state < len(STATE_NAMES) else "nostate"


def reason_name(state: int, reason: int) -> str:
    """libvirt's reason for the state ("booted", "destroyed", "user", ...); "unknown" when it has none."""
    names = _REASONS.get(state_name(state), ())
    return names[reason] if 0 <= reason < len(names) else "unknown"


@dataclass(frozen=True)
class DiskFacts:
    """What XML does not say about a disk: its pool/volume (when found by path) and its sizes."""

    pool: str | None = None
    volume: str | None = None
    capacity: int | None = None
    allocation: int | None = None


@dataclass(frozen=True)
class DomainFacts:
    """The live facts of one domain, gathered by reader.py."""

    state: int
    reason: int
    autostart: bool
    persistent: bool
    disks: dict[str, DiskFacts]  # by target dev
    addresses: dict[str, list[str]]  # by lower-case MAC


def vm_document(host: str, dom: Domain, facts: DomainFacts, now: float) -> VM:
    state = state_name(facts.state)
    return VM(
        id=dom.uuid or "",
        name=dom.name or "",
        host=host,
        state=state,
        state_reason=reason_name(facts.state, facts.reason),
        vcpus=dom.vcpus or 0,
        memory_mib=dom.memory_mib or 0,
        autostart=facts.autostart,
        persistent=facts.persistent,
        firmware="uefi" if dom.is_uefi else "bios",
        description=dom.description or "",
        disks=[_disk(d, facts.disks.get(d.target_dev or "")) for d in dom.disks],
        nics=[_nic(n, facts.addresses) for n in dom.interfaces],
        graphics=[_graphics(g) for g in dom.graphics],
        updated_at=now,
    )


def _disk(disk: Any, facts: DiskFacts | None) -> Disk:
    facts = facts or DiskFacts()
    return Disk(
        target=disk.target_dev or "",
        bus=disk.target_bus,
        device=disk.device or "disk",
        pool=disk.source_pool or facts.pool,
        volume=disk.source_volume or facts.volume,
        path=disk.path,
        format=disk.driver_type,
        capacity=facts.capacity,
        allocation=facts.allocation,
    )


def _nic(nic: Any, addresses: dict[str, list[str]]) -> Nic:
    mac = (nic.mac or "").lower()
    return Nic(
        mac=mac,
        model=nic.model,
        type=nic.type,
        network=nic.source_network,
        bridge=nic.source_bridge,
        target_dev=nic.target_dev,
        addresses=list(addresses.get(mac, ())),
    )


def _graphics(graphics: Any) -> Graphics:
    port = graphics.port
    return Graphics(type=graphics.type or "", port=port if port and port > 0 else None, listen=graphics.listen)


def guest_agent_connected(dom: Domain) -> bool:
    """Live XML marks the agent channel state='connected' once the agent inside the guest answers."""
    return any(
        ch.target_name == "org.qemu.guest_agent.0" and ch.target_state == "connected" for ch in dom.channels
    )


def addresses_by_mac(interfaces: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """virDomainInterfaceAddresses' answer -> {mac: ["10.0.0.5/24", ...]}, loopback left out."""
    found: dict[str, list[str]] = {}
    for ifname, iface in (interfaces or {}).items():
        mac = (iface.get("hwaddr") or "").lower()
        if not mac or ifname == "lo":
            continue
        for addr in iface.get("addrs") or ():
            text = addr.get("addr")
            if not text:
                continue
            try:
                if ipaddress.ip_address(text).is_loopback:
                    continue
            except ValueError:
                continue
            prefix = addr.get("prefix")
            entry = f"{text}/{prefix}" if prefix is not None else text
            if entry not in found.setdefault(mac, []):
                found[mac].append(entry)
    return found


def pool_document(
    host: str,
    xml: StoragePool,
    info: list[int],
    *,
    autostart: bool,
    persistent: bool,
    volumes: int,
    volumes_allocation: int | None = None,
    remote: bool,
    stat: Callable[[str], os.stat_result] = os.stat,
) -> Pool:
    """`info` is virStoragePool.info(): [state, capacity, allocation, available] in bytes.

    For filesystem pools libvirt's allocation is the whole filesystem's use, the same figure for every
    pool on it; the pool's own share is what its volumes take (`volumes_allocation`), so that is shown.
    """
    state, capacity, allocation, available = (list(info) + [0, 0, 0, 0])[:4]
    if (xml.type or "") in FILESYSTEM_POOL_TYPES and volumes_allocation is not None:
        allocation = volumes_allocation
    active = state in (2, 3)  # running, degraded: libvirt's figures are meaningful
    group_id, label = group_pool(
        xml.target_path, xml.type or "", xml.source_name, capacity, available, remote, stat=stat
    )
    return Pool(
        host=host,
        name=xml.name or "",
        uuid=xml.uuid or "",
        type=xml.type or "",
        state=POOL_STATES[state] if 0 <= state < len(POOL_STATES) else "inactive",
        active=active,
        autostart=autostart,
        persistent=persistent,
        target=xml.target_path,
        capacity=capacity if active else 0,
        allocation=allocation if active else 0,
        available=available if active else 0,
        group_id=group_id,
        group_label=label,
        volumes=volumes,
    )


def network_document(host: str, xml: NetworkXml, *, active: bool, autostart: bool, persistent: bool) -> Network:
    ip = xml.ip("ipv4") or xml.ip("ipv6")
    prefix = None
    dhcp = False
    if ip is not None:
        prefix = ip.prefix
        if prefix is None and ip.netmask:
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{ip.netmask}").prefixlen
        dhcp = len(ip.dhcp_ranges) > 0 or len(ip.dhcp_hosts) > 0
    return Network(
        host=host,
        name=xml.name or "",
        uuid=xml.uuid or "",
        active=active,
        autostart=autostart,
        persistent=persistent,
        forward_mode=xml.forward_mode or "isolated",
        mode=xml.mode,
        bridge=xml.bridge_name,
        ip_address=ip.address if ip is not None else None,
        prefix=prefix,
        dhcp=dhcp,
    )
