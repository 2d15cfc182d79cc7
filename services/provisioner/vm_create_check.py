"""vm.create, before anything is made: check every field against the host and resolve the request into
the plan the steps carry out (names, sizes, paths, UUID, MACs, the domain XML), with no clear password.

Each refusal is a ServiceError naming the request field: 400 for a malformed body, 409 when something
already exists, 422 for a value this host cannot satisfy.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import uuid
from typing import Any
from urllib.parse import urlparse

import libvirt
import msgspec

from flint.contracts.common import ServiceError
from flint.contracts.vms import DiskSpec, VMCreateRequest, source_kind
from flint.virt.connection import libvirt_error
from flint.xml import Capabilities, DomainCapabilities, StoragePool, StorageVolume, validate_name
from services.provisioner import cloudinit, netinstall
from services.provisioner.domain_builder import (
    BuildError,
    BuildPlan,
    DiskPlan,
    NicPlan,
    build_domain,
    choose_guest,
)

MIN_MEMORY_MIB = 64
FILE_POOLS = {"dir", "fs", "netfs", "gluster"}
IMAGE_FORMATS = {"qcow2", "raw"}
SEED_RESERVE = 1024 * 1024  # room kept for the cloud-init seed volume
_BRIDGE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
_MAC = re.compile(r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}")
_MSGSPEC_AT = re.compile(r"\s*-\s*at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")
GIB = 1024**3
MIB = 1024**2


def fail(code: int, field: str, message: str) -> ServiceError:
    return ServiceError(code, f"{field}: {message}", field)


def decode_request(params: dict[str, Any]) -> VMCreateRequest:
    """The job parameters as the contract's Struct; a malformed body is a 400 naming the field."""
    try:
        return msgspec.convert(params, VMCreateRequest)
    except msgspec.ValidationError as exc:
        text = str(exc)
        at = _MSGSPEC_AT.search(text)
        missing = _MISSING.search(text)
        field = at.group(1) if at else ""
        if missing:
            field = ".".join(p for p in (field, missing.group(1)) if p)
        raise ServiceError(400, f"{field or 'body'}: {text}", field or None) from None


def volume_base(vm_name: str) -> str:
    """Volume names derive from the VM name; long names are shortened with a hash so each stays <= 63."""
    if len(vm_name) <= 44:
        return vm_name
    return f"{vm_name[:36]}-{hashlib.sha256(vm_name.encode()).hexdigest()[:7]}"


def random_mac() -> str:
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def split_ref(ref: str, field: str) -> tuple[str, str]:
    pool, sep, vol = ref.partition("/")
    if not sep or not pool or not vol or "/" in vol:
        raise fail(422, field, f"{ref!r} must name a volume as pool/volume")
    try:
        validate_name("pool", pool)
    except ValueError as exc:
        raise fail(422, field, str(exc)) from None
    return pool, vol


class HostCheck:
    """The libvirt look-ups validation needs, with the answers cached for one request (blocking)."""

    def __init__(self, conn: libvirt.virConnect, uri: str):
        self.conn, self.uri = conn, uri
        self._pools: dict[str, libvirt.virStoragePool] = {}

    def pool(self, name: str, field: str) -> libvirt.virStoragePool:
        if name in self._pools:
            return self._pools[name]
        try:
            validate_name("pool", name)
        except ValueError as exc:
            raise fail(422, field, str(exc)) from None
        try:
            pool = self.conn.storagePoolLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise fail(422, field, f"there is no storage pool {name!r} on this host") from None
            raise libvirt_error(exc, f"storage pool {name!r}") from exc
        if not pool.isActive():
            raise fail(422, field, f"storage pool {name!r} is not active: start it first")
        try:
            pool.refresh(0)  # see volumes made behind libvirt's back, and the true free space
        except libvirt.libvirtError:
            pass  # a refresh already running (another job): its figures are fresh enough
        self._pools[name] = pool
        return pool

    def pool_type(self, name: str) -> str:
        return StoragePool.parse(self._pools[name].XMLDesc(0)).type or "dir"

    def volume(self, ref: str, field: str) -> tuple[str, str, libvirt.virStorageVol]:
        pool_name, vol_name = split_ref(ref, field)
        pool = self.pool(pool_name, field)
        try:
            return pool_name, vol_name, pool.storageVolLookupByName(vol_name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise fail(422, field, f"there is no volume {vol_name!r} in pool {pool_name!r}") from None
            raise libvirt_error(exc, f"volume {ref}") from exc

    def volume_exists(self, pool_name: str, vol_name: str) -> bool:
        try:
            self._pools[pool_name].storageVolLookupByName(vol_name)
            return True
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                return False
            raise libvirt_error(exc, f"volume {pool_name}/{vol_name}") from exc

    def host_cpus_and_memory(self) -> tuple[int, int]:
        info = self.conn.getInfo()  # [model, memory MiB, cpus, ...]; memory is wrong inside containers
        try:
            total_mib = self.conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)["total"] // 1024
        except (libvirt.libvirtError, KeyError):
            total_mib = int(info[1])
        return int(info[2]), int(total_mib)

    def is_local(self) -> bool:
        return not urlparse(self.uri).hostname

    def check_bridge(self, bridge: str, field: str) -> None:
        if not _BRIDGE.fullmatch(bridge):
            raise fail(422, field, f"{bridge!r} is not a valid interface name (1-15 letters, digits, '_', '.', '-')")
        if self.is_local():
            if not os.path.isdir(f"/sys/class/net/{bridge}/bridge"):
                what = "is not a bridge" if os.path.exists(f"/sys/class/net/{bridge}") else "does not exist"
                raise fail(422, field, f"host interface {bridge!r} {what} on this host")
            return
        try:
            self.conn.interfaceLookupByName(bridge)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_INTERFACE:
                raise fail(422, field, f"host interface {bridge!r} does not exist on this host") from None
            # Drivers without interface support cannot tell: starting the VM will.

    def check_network(self, name: str, field: str, must_be_active: bool) -> None:
        try:
            net = self.conn.networkLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                raise fail(422, field, f"there is no network {name!r} on this host") from None
            raise libvirt_error(exc, f"network {name!r}") from exc
        if must_be_active and not net.isActive():
            raise fail(422, field, f"network {name!r} is not active: start it, or create the VM without starting it")


def _check_identity(host: HostCheck, req: VMCreateRequest) -> None:
    try:
        validate_name("vm", req.name)
    except ValueError as exc:
        raise fail(422, "name", str(exc)) from None
    try:
        dom = host.conn.lookupByName(req.name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise libvirt_error(exc, f"look up VM {req.name!r}") from exc
    else:
        raise fail(409, "name", f"a VM named {req.name!r} already exists on this host ({dom.UUIDString()})")
    cpus, memory_mib = host.host_cpus_and_memory()
    if not 1 <= req.vcpus <= cpus:
        raise fail(422, "vcpus", f"{req.vcpus} vCPUs asked; this host has {cpus} CPUs (1 to {cpus})")
    if req.memory_mib < MIN_MEMORY_MIB:
        raise fail(422, "memory_mib", f"{req.memory_mib} MiB is too little: at least {MIN_MEMORY_MIB} MiB")
    if req.memory_mib > memory_mib:
        raise fail(422, "memory_mib", f"{req.memory_mib} MiB asked; this host has {memory_mib} MiB of memory")


def _plan_disks(host: HostCheck, req: VMCreateRequest, base: str) -> tuple[list[dict], list[dict], dict | None]:
    """(disks to create, CD-ROMs of existing volumes, the source image) for the request."""
    source = req.source
    image = None
    cdroms: list[dict] = []
    if source_kind(source) == "iso":
        pool_name, vol_name, _ = host.volume(source.volume, "source.volume")
        cdroms.append({"pool": pool_name, "volume": vol_name})
    elif source_kind(source) == "cloud_image":  # network_install and pxe bring no volume of their own
        pool_name, vol_name, vol = host.volume(source.volume, "source.volume")
        desc = StorageVolume.parse(vol.XMLDesc(0))
        fmt = desc.format or "raw"
        if fmt not in IMAGE_FORMATS:
            raise fail(422, "source.volume", f"{source.volume} is a {fmt} volume; a cloud image must be qcow2 or raw")
        image = {"pool": pool_name, "volume": vol_name, "path": vol.path(), "format": fmt,
                 "capacity": int(vol.info()[1])}
    specs = list(req.disks)
    if image is not None and not specs:
        specs = [DiskSpec(size_gib=max(image["capacity"], MIB) / GIB, pool=image["pool"])]
    disks: list[dict] = []
    for i, spec in enumerate(specs):
        field = f"disks[{i}]"
        host.pool(spec.pool, f"{field}.pool")
        ptype = host.pool_type(spec.pool)
        capacity = -(-int(spec.size_gib * GIB) // MIB) * MIB
        backing = None
        if i == 0 and image is not None:
            if ptype not in FILE_POOLS:
                raise fail(422, f"{field}.pool", f"pool {spec.pool!r} is {ptype}: a qcow2 overlay on a cloud image "
                                                 "needs a file pool (dir, fs, netfs)")
            if capacity < image["capacity"]:
                raise fail(422, f"{field}.size_gib", f"{spec.size_gib:g} GiB is smaller than the image "
                                                     f"{source.volume} ({image['capacity'] / GIB:.2f} GiB)")
            backing = {"path": image["path"], "format": image["format"]}
        fmt = "qcow2" if ptype in FILE_POOLS else "raw"
        name = f"{base}-disk{i}" + (".qcow2" if fmt == "qcow2" else "")
        if host.volume_exists(spec.pool, name):
            raise fail(409, field, f"volume {name!r} already exists in pool {spec.pool!r}: delete it or name the VM "
                                   "differently")
        disks.append({"pool": spec.pool, "volume": name, "capacity": capacity, "format": fmt,
                      "bus": spec.bus, "backing": backing})
    return disks, cdroms, image


def _check_space(host: HostCheck, disks: list[dict], seed: dict | None) -> None:
    need: dict[str, int] = {}
    for d in disks:
        need[d["pool"]] = need.get(d["pool"], 0) + d["capacity"]
    if seed is not None:
        need[seed["pool"]] = need.get(seed["pool"], 0) + SEED_RESERVE
    for pool_name, total in need.items():
        available = int(host._pools[pool_name].info()[3])
        if total > available:
            index = next(i for i, d in enumerate(disks) if d["pool"] == pool_name) if disks else 0
            raise fail(422, f"disks[{index}].size_gib",
                       f"the disks in pool {pool_name!r} need {total / GIB:.2f} GiB; it has {available / GIB:.2f} GiB free")


def _plan_nics(host: HostCheck, req: VMCreateRequest) -> list[dict]:
    nics = []
    seen = set()
    for i, nic in enumerate(req.nics):
        field = f"nics[{i}]"
        if bool(nic.network) == bool(nic.bridge):
            raise fail(422, field, "give exactly one of network (a libvirt network) or bridge (a host bridge)")
        if nic.network:
            try:
                validate_name("network", nic.network)
            except ValueError as exc:
                raise fail(422, f"{field}.network", str(exc)) from None
            host.check_network(nic.network, f"{field}.network", must_be_active=req.start)
        else:
            host.check_bridge(nic.bridge, f"{field}.bridge")
        mac = (nic.mac or random_mac()).lower()
        if not _MAC.fullmatch(mac) or int(mac[:2], 16) & 1:
            raise fail(422, f"{field}.mac", f"{nic.mac!r} is not a unicast MAC address like 52:54:00:12:34:56")
        if mac in seen:
            raise fail(422, f"{field}.mac", f"MAC {mac} is given twice")
        seen.add(mac)
        nics.append({"network": nic.network, "bridge": nic.bridge, "model": nic.model, "mac": mac})
    return nics


def check_request(conn: libvirt.virConnect, uri: str, this_host: str, virt_type: str,
                  params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Blocking (run in a thread). Returns the plan the job records, and its target label."""
    req = decode_request(params)
    if req.host not in (None, this_host):
        raise fail(400, "host", f"this request for host {req.host!r} reached host {this_host!r}")
    kind = source_kind(req.source)
    host = HostCheck(conn, uri)
    _check_identity(host, req)
    base = volume_base(req.name)
    vm_uuid = str(uuid.uuid4())
    disks, cdroms, image = _plan_disks(host, req, base)
    nics = _plan_nics(host, req)
    install, pxe_mac, warnings = None, None, []
    if kind == "network_install":
        if req.direct_boot is not None:
            raise fail(422, "direct_boot", "a network install boots the installer's kernel: leave direct_boot out")
        install = netinstall.plan_install(conn, virt_type, req.source, req.start, disks, vm_uuid, base)
    elif kind == "pxe":
        if req.source.network:
            try:
                validate_name("network", req.source.network)
            except ValueError as exc:
                raise fail(422, "source.network", str(exc)) from None
            host.check_network(req.source.network, "source.network", must_be_active=req.start)
        elif req.source.bridge:
            host.check_bridge(req.source.bridge, "source.bridge")
        nics, pxe_mac, warnings = netinstall.plan_pxe(conn, req.source, nics, random_mac())

    ci = None
    seed = None
    if req.source.cloud_init is not None:
        try:
            ci = cloudinit.normalise(msgspec.to_builtins(req.source.cloud_init), req.name, "source.cloud_init")
        except cloudinit.FieldError as exc:
            raise fail(422, exc.field, exc.message) from None
        if not ci["network"]["dhcp"] and not nics:
            raise fail(422, "source.cloud_init.network", "a static address needs a NIC: add one to nics")
        if not disks and not cdroms:
            raise fail(422, "source.cloud_init", "the cloud-init seed is stored in a disk's pool: add a disk")
        seed_pool = disks[0]["pool"] if disks else cdroms[0]["pool"]
        host.pool(seed_pool, "source.cloud_init")
        seed = {"pool": seed_pool, "volume": f"{base}-cidata.iso",
                "format": "raw" if host.pool_type(seed_pool) in FILE_POOLS else None}
        if host.volume_exists(seed_pool, seed["volume"]):
            raise fail(409, "source.cloud_init", f"volume {seed['volume']!r} already exists in pool {seed_pool!r}: "
                                                 "delete it or name the VM differently")
    _check_space(host, disks, seed)

    boot = None
    if req.direct_boot is not None:
        _, _, kernel = host.volume(req.direct_boot.kernel, "direct_boot.kernel")
        initrd = host.volume(req.direct_boot.initrd, "direct_boot.initrd")[2] if req.direct_boot.initrd else None
        boot = {"kernel": kernel.path(), "initrd": initrd.path() if initrd else None,
                "cmdline": req.direct_boot.cmdline, "kernel_ref": req.direct_boot.kernel,
                "initrd_ref": req.direct_boot.initrd}

    plan = {
        "name": req.name, "uuid": vm_uuid, "vcpus": req.vcpus, "memory_mib": req.memory_mib,
        "firmware": req.firmware, "start": req.start, "description": req.description,
        "source": {"kind": kind, "volume": getattr(req.source, "volume", None)},
        "disks": disks, "cdroms": cdroms, "nics": nics, "seed": seed, "cloud_init": ci, "direct_boot": boot,
        "netinstall": install, "warnings": warnings,
    }
    plan["domain_xml"] = domain_xml(conn, virt_type, plan)
    if pxe_mac:
        plan["domain_xml"] = netinstall.pxe_first(plan["domain_xml"], pxe_mac)
    return plan, req.name


def build_plan(plan: dict[str, Any]) -> BuildPlan:
    disks = [DiskPlan(pool=d["pool"], volume=d["volume"], bus=d["bus"], format=d["format"]) for d in plan["disks"]]
    disks += [DiskPlan(pool=c["pool"], volume=c["volume"], device="cdrom", format="raw") for c in plan["cdroms"]]
    if plan["seed"]:
        disks.append(DiskPlan(pool=plan["seed"]["pool"], volume=plan["seed"]["volume"], device="cdrom", format="raw"))
    boot = ["cdrom", "hd"] if plan["source"]["kind"] == "iso" else ["hd"]
    direct = plan.get("direct_boot") or {}
    return BuildPlan(
        name=plan["name"], uuid=plan["uuid"], vcpus=plan["vcpus"], memory_mib=plan["memory_mib"],
        firmware=plan["firmware"], disks=disks,
        nics=[NicPlan(mac=n["mac"], network=n["network"], bridge=n["bridge"], model=n["model"]) for n in plan["nics"]],
        boot=boot, kernel=direct.get("kernel"), initrd=direct.get("initrd"), cmdline=direct.get("cmdline"),
        description=plan.get("description") or "",
    )


def domain_xml(conn: libvirt.virConnect, virt_type: str, plan: dict[str, Any]) -> str:
    """Build the domain from the host's capabilities; a host that cannot run it is a 422 naming why."""
    bplan = build_plan(plan)
    try:
        caps = Capabilities.parse(conn.getCapabilities())
        guest = choose_guest(caps, virt_type, bplan.needs_ide)
        try:
            domcaps = DomainCapabilities.parse(
                conn.getDomainCapabilities(guest.emulator, guest.arch, guest.machine, virt_type, 0))
        except libvirt.libvirtError:
            domcaps = None  # drivers without domain capabilities: BIOS and default devices still work
        if domcaps is not None:
            buses = set(domcaps.enum("disk", "bus"))
            for i, d in enumerate(bplan.disks):
                if d.device == "disk" and buses and (d.bus or "virtio") not in buses:
                    raise BuildError(f"disks[{i}].bus", f"disk bus {d.bus!r} is not offered by {guest.emulator} "
                                                        f"(offered: {', '.join(sorted(buses))})")
        return build_domain(bplan, caps, domcaps, virt_type).to_xml()
    except BuildError as exc:
        raise fail(422, exc.field, exc.message) from None
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, "read the host's capabilities") from exc
