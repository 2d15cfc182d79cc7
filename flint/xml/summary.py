"""Plain-dict views of domain XML for the inventory (what the API and UI list)."""

from __future__ import annotations

from typing import Any

from .domain import Domain


def disk_summary(disk) -> dict[str, Any]:
    return {
        "target": disk.target_dev,
        "bus": disk.target_bus,
        "device": disk.device or "disk",
        "type": disk.type,
        "pool": disk.source_pool,
        "volume": disk.source_volume,
        "path": disk.path,
        "format": disk.driver_type,
        "readonly": disk.readonly,
        "boot_order": disk.boot_order,
    }


def nic_summary(nic) -> dict[str, Any]:
    return {
        "mac": nic.mac,
        "model": nic.model,
        "type": nic.type,
        "network": nic.source_network,
        "bridge": nic.source_bridge,
        "source_dev": nic.source_dev,
        "target_dev": nic.target_dev,
        "filter": nic.filter,
        "boot_order": nic.boot_order,
    }


def graphics_summary(graphics) -> dict[str, Any]:
    port = graphics.port
    return {
        "type": graphics.type,
        "port": -1 if port is None or port < 0 else port,
        "autoport": bool(graphics.autoport),
        "listen": graphics.listen,
    }


def domain_summary(xml: str | Domain) -> dict[str, Any]:
    """What the inventory keeps about a domain, from its (inactive or live) XML.

    Keys: uuid, name, title, description, virt_type, arch, machine, vcpus, memory_mib,
    current_memory_mib, firmware ('uefi' or 'bios'), boot (os boot devices), disks, nics, graphics,
    metadata (Flint's metadata values). Graphics ``port`` is -1 until a running VM has one.
    """
    dom = xml if isinstance(xml, Domain) else Domain.parse(xml)
    return {
        "uuid": dom.uuid,
        "name": dom.name,
        "title": dom.title,
        "description": dom.description,
        "virt_type": dom.type,
        "arch": dom.arch,
        "machine": dom.machine,
        "vcpus": dom.vcpus,
        "memory_mib": dom.memory_mib,
        "current_memory_mib": dom.current_memory_mib,
        "firmware": "uefi" if dom.is_uefi else "bios",
        "boot": dom.boot_devices,
        "disks": [disk_summary(d) for d in dom.disks],
        "nics": [nic_summary(n) for n in dom.interfaces],
        "graphics": [graphics_summary(g) for g in dom.graphics],
        "metadata": dom.flint_metadata(),
    }
