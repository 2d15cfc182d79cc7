"""A fake of the few libvirt calls vm.create's validation makes: pools, volumes, networks, domains, host
figures and the captured capabilities of a real Debian 12 host."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from flint.xml import StoragePool, StorageVolume

XML_GOLDEN = Path(__file__).parents[1] / "xml" / "golden"
GIB = 1024**3


def error(code: int, message: str) -> libvirt.libvirtError:
    exc = libvirt.libvirtError(message)
    exc.err = (code, 0, message, 2, None, None, None, 0, 0)
    return exc


@dataclass
class FakeVol:
    name: str
    path: str
    capacity: int
    fmt: str

    def XMLDesc(self, _flags=0) -> str:  # noqa: N802 - libvirt's name
        vol = StorageVolume(name=self.name, capacity=self.capacity, format=self.fmt)
        vol.path = self.path
        return vol.to_xml()

    def info(self):
        return [0, self.capacity, self.capacity]


@dataclass
class FakePool:
    name: str
    type: str = "dir"
    active: bool = True
    available: int = 100 * GIB
    vols: dict[str, FakeVol] = field(default_factory=dict)

    def add(self, name: str, capacity: int, fmt: str) -> FakeVol:
        vol = FakeVol(name, f"/pools/{self.name}/{name}", capacity, fmt)
        self.vols[name] = vol
        return vol

    def isActive(self):  # noqa: N802
        return self.active

    def refresh(self, _flags=0):
        pass

    def XMLDesc(self, _flags=0):  # noqa: N802
        return StoragePool(type=self.type, name=self.name).to_xml()

    def info(self):
        return [2, 200 * GIB, 200 * GIB - self.available, self.available]

    def storageVolLookupByName(self, name):  # noqa: N802
        if name not in self.vols:
            raise error(libvirt.VIR_ERR_NO_STORAGE_VOL, f"Storage volume not found: {name}")
        vol = self.vols[name]
        return _VolHandle(vol)


class _VolHandle:
    def __init__(self, vol: FakeVol):
        self._vol = vol

    def XMLDesc(self, flags=0):  # noqa: N802
        return self._vol.XMLDesc(flags)

    def info(self):
        return self._vol.info()

    def path(self):
        return self._vol.path


@dataclass
class FakeNet:
    name: str
    active: bool = True

    def isActive(self):  # noqa: N802
        return self.active


class FakeDomain:
    def __init__(self, uuid: str):
        self.uuid = uuid

    def UUIDString(self):  # noqa: N802
        return self.uuid


@dataclass
class FakeConn:
    pools: dict[str, FakePool] = field(default_factory=dict)
    nets: dict[str, FakeNet] = field(default_factory=dict)
    domains: dict[str, str] = field(default_factory=dict)
    cpus: int = 4
    memory_mib: int = 16384

    def lookupByName(self, name):  # noqa: N802
        if name not in self.domains:
            raise error(libvirt.VIR_ERR_NO_DOMAIN, f"Domain not found: {name}")
        return FakeDomain(self.domains[name])

    def getInfo(self):  # noqa: N802
        return ["x86_64", 1024, self.cpus, 2600, 1, 1, self.cpus, 1]

    def getMemoryStats(self, _cell, _flags=0):  # noqa: N802
        return {"total": self.memory_mib * 1024, "free": self.memory_mib * 512}

    def storagePoolLookupByName(self, name):  # noqa: N802
        if name not in self.pools:
            raise error(libvirt.VIR_ERR_NO_STORAGE_POOL, f"Storage pool not found: {name}")
        return self.pools[name]

    def networkLookupByName(self, name):  # noqa: N802
        if name not in self.nets:
            raise error(libvirt.VIR_ERR_NO_NETWORK, f"Network not found: {name}")
        return self.nets[name]

    def interfaceLookupByName(self, name):  # noqa: N802
        raise error(libvirt.VIR_ERR_NO_INTERFACE, f"Interface not found: {name}")

    def getCapabilities(self):  # noqa: N802
        return (XML_GOLDEN / "capabilities-qemu-x86_64.xml").read_text()

    def getDomainCapabilities(self, emulator, arch, machine, virt_type, flags=0):  # noqa: N802
        name = "domcaps-kvm-q35.xml" if "q35" in machine else "domcaps-qemu-pc.xml"
        return (XML_GOLDEN / name).read_text()


def lab() -> FakeConn:
    conn = FakeConn()
    images = FakePool("images")
    images.add("debian.iso", 600 * 1024**2, "raw")
    images.add("debian-12.qcow2", 2 * GIB, "qcow2")
    images.add("vmlinuz", 8 * 1024**2, "raw")
    images.add("tools.iso", 4 * 1024**2, "iso")
    conn.pools["images"] = images
    conn.pools["vms"] = FakePool("vms", available=50 * GIB)
    conn.pools["lvm"] = FakePool("lvm", type="logical")
    conn.pools["off"] = FakePool("off", active=False)
    conn.nets["lab"] = FakeNet("lab")
    conn.nets["down"] = FakeNet("down", active=False)
    conn.domains["taken"] = "11111111-2222-3333-4444-555555555555"
    return conn
