"""Documents the inventory keeps in KV flint-inventory and the gateway serves as they are."""

from __future__ import annotations

import msgspec


class Disk(msgspec.Struct, kw_only=True):
    target: str
    bus: str | None = None
    device: str = "disk"
    pool: str | None = None
    volume: str | None = None
    path: str | None = None
    format: str | None = None
    capacity: int | None = None
    allocation: int | None = None


class Nic(msgspec.Struct, kw_only=True):
    mac: str
    model: str | None = None
    type: str | None = None
    network: str | None = None
    bridge: str | None = None
    target_dev: str | None = None
    addresses: list[str] = []


class Graphics(msgspec.Struct, kw_only=True):
    type: str
    port: int | None = None
    listen: str | None = None


class VM(msgspec.Struct, kw_only=True):
    id: str
    name: str
    host: str
    state: str
    state_reason: str = ""
    vcpus: int = 0
    memory_mib: int = 0
    autostart: bool = False
    persistent: bool = True
    firmware: str = "bios"
    description: str = ""
    disks: list[Disk] = []
    nics: list[Nic] = []
    graphics: list[Graphics] = []
    updated_at: float = 0.0


class HostFacts(msgspec.Struct, kw_only=True):
    name: str
    uri: str
    state: str = "up"  # up | unreachable
    hostname: str = ""
    cpu_model: str = ""
    cpus: int = 0
    memory_total_bytes: int = 0
    memory_free_bytes: int = 0
    libvirt_version: str = ""
    qemu_version: str = ""
    virt_type: str = ""
    virt_type_reason: str = ""
    uptime_s: float = 0.0
    cpu_percent: float = 0.0
    remote: bool = False
    agentless: bool = False  # added through POST /api/v1/hosts: its services run under the central `flint up`
    updated_at: float = 0.0


class Pool(msgspec.Struct, kw_only=True):
    host: str
    name: str
    uuid: str = ""
    type: str = ""
    state: str = ""
    active: bool = False
    autostart: bool = False
    persistent: bool = True
    target: str | None = None
    capacity: int = 0
    allocation: int = 0
    available: int = 0
    # What the pool's storage lives on: "fs:<st_dev>" for a local filesystem, "vg:<name>" for LVM,
    # "libvirt:<capacity>:<available>" where only libvirt's figures are known (remote hosts).
    group_id: str = ""
    group_label: str = ""
    volumes: int = 0


class Network(msgspec.Struct, kw_only=True):
    host: str
    name: str
    uuid: str = ""
    active: bool = False
    autostart: bool = False
    persistent: bool = True
    forward_mode: str = "isolated"
    mode: str = "isolated"  # nat, route, isolated, bridge, macvtap (see flint.xml.Network.mode)
    bridge: str | None = None
    ip_address: str | None = None
    prefix: int | None = None
    dhcp: bool = False


class MetricSample(msgspec.Struct, kw_only=True):
    t: float
    cpu_percent: float = 0.0
    memory_used_bytes: int = 0
    memory_total_bytes: int = 0
    disk_read_bps: float = 0.0
    disk_write_bps: float = 0.0
    net_rx_bps: float = 0.0
    net_tx_bps: float = 0.0


class VMMetrics(msgspec.Struct, kw_only=True):
    interval_s: float
    samples: list[MetricSample] = []


class VMActionRequest(msgspec.Struct, kw_only=True):
    id: str
    action: str


class VMActionReply(msgspec.Struct, kw_only=True):
    id: str
    action: str
    state: str


class MetricsRequest(msgspec.Struct, kw_only=True):
    id: str


class StoragePoolShare(msgspec.Struct, kw_only=True):
    name: str
    type: str
    target: str | None
    allocation: int
    capacity: int
    available: int
    active: bool


class StorageGroup(msgspec.Struct, kw_only=True):
    id: str
    label: str
    capacity: int
    used: int
    free: int
    pools: list[StoragePoolShare]


class StorageTotals(msgspec.Struct, kw_only=True):
    capacity: int = 0
    used: int = 0
    free: int = 0


class HostStorage(msgspec.Struct, kw_only=True):
    host: str
    capacity: int
    used: int
    free: int
    groups: list[StorageGroup]


class StorageSummary(msgspec.Struct, kw_only=True):
    overall: StorageTotals
    hosts: list[HostStorage]


class InventoryRefresh(msgspec.Struct, kw_only=True):
    """Ask `flint.<host>.inventory.refresh` to re-read one object now (a change libvirt raised no event for)."""

    kind: str  # network | pool | domain
    id: str  # network or pool name, domain UUID


class ResyncReply(msgspec.Struct, kw_only=True):
    """What `flint.<host>.inventory.resync` did: objects seen, documents rewritten, keys removed."""

    domains: int = 0
    pools: int = 0
    networks: int = 0
    updated: int = 0
    deleted: int = 0
    duration_ms: float = 0.0
