"""Read domains, pools and networks from libvirt into documents. Every function here BLOCKS: call it
through VirtConnection.call (a worker thread), never on the event loop and never in an event callback.

Speed matters with 1,000 domains: a full read is one getAllDomainStats (state and every disk's sizes in
one call), two filtered listAllDomains (autostart, transient), one XMLDesc per domain, one pass over the
pools' volumes, and interface addresses only for running domains with NICs, cached for ADDRESS_TTL_S.
Changed domains are read in batches: `read_domain_facts` asks for the state and sizes of up to BATCH_MAX
of them in one call, and which are transient in another (a domain list filtered by TRANSIENT), with the
virDomain handles the event callbacks carried (no lookup by UUID); then `build_domain` adds each one's
XMLDesc and autostart. Not the filtered listAllDomains of a full read: each walks and locks every domain
of the host, so it waits on any domain libvirt holds (a destroy, a start) and on concurrent defines: with
them, 13 batch calls of one bench/inventory.py run were late by 0.25 s or more (none without), while a
per-domain call costs libvirtd ~60 us.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import libvirt

from flint.contracts.inventory import VM, Network, Pool
from flint.xml.domain import Domain
from flint.xml.network import Network as NetworkXml
from flint.xml.pool import StoragePool

from .documents import (
    DiskFacts,
    DomainFacts,
    addresses_by_mac,
    guest_agent_connected,
    network_document,
    pool_document,
    vm_document,
)

ADDRESS_TTL_S = 30.0
BATCH_MAX = 64  # changed domains whose state and sizes are asked for in one call
_STATS = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_BLOCK
_ADDRESS_SOURCES = (
    libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,  # libvirt's own dnsmasq leases: instant
    libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,  # only asked when the agent is connected
    libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,  # the host's ARP table: bridged guests
)


def is_remote(uri: str) -> bool:
    """qemu+ssh://host/system names another machine; qemu:///system and test:///file do not."""
    return bool(urlsplit(uri).hostname)


def _usable(handle: Any, conn: libvirt.virConnect) -> bool:
    """A virDomain handle from an event callback serves only the connection it came on."""
    return handle is not None and handle.connect() is conn


def _not_found(exc: libvirt.libvirtError) -> bool:
    return exc.get_error_code() in (
        libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_STORAGE_POOL, libvirt.VIR_ERR_NO_NETWORK,
    )


@dataclass
class DomainBatch:
    """What a few calls say about a batch of domains at once; `build_domain` adds each one's XML."""

    doms: dict[str, Any] = field(default_factory=dict)  # uuid -> virDomain, for those that exist
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # uuid -> state and block stats
    transient: set[str] | None = None  # the batch's transient domains; None: ask each (driver cannot filter)

    def gone(self, uuid: str) -> bool:
        """The domain no longer existed: `build_domain` says so without calling libvirt."""
        return uuid not in self.stats or uuid not in self.doms


@dataclass
class Snapshot:
    vms: list[VM] = field(default_factory=list)
    pools: list[Pool] = field(default_factory=list)
    networks: list[Network] = field(default_factory=list)


class Reader:
    def __init__(self, host: str, uri: str):
        self.host = host
        self.remote = is_remote(uri)
        # The test driver crashes the process (SIGSEGV in libvirt 9.0) in interfaceAddresses for a NIC on
        # a network without <ip>; it has no guests to ask anyway.
        self.addresses_supported = not uri.startswith("test:")
        self._addresses: dict[str, tuple[float, dict[str, list[str]]]] = {}

    # ---- domains -------------------------------------------------------------------------------------

    def read_all(self, conn: libvirt.virConnect) -> Snapshot:
        records = _domain_stats(conn, None)
        autostart = {d.UUIDString() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_AUTOSTART)}
        transient = {d.UUIDString() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)}
        volumes = VolumeIndex()
        snap = Snapshot()
        pools = (self._pool(pool, volumes) for pool in conn.listAllStoragePools())
        snap.pools = [p for p in pools if p is not None]
        for dom, stats in records:
            uuid = dom.UUIDString()
            try:
                snap.vms.append(self._build(dom, stats, uuid in autostart, uuid not in transient, volumes))
            except libvirt.libvirtError as exc:
                if not _not_found(exc):  # undefined since the list was made: simply not there
                    raise
        live = {vm.id for vm in snap.vms}
        for uuid in list(self._addresses):
            if uuid not in live:
                self._addresses.pop(uuid, None)  # event reads in other threads share this cache
        snap.networks = [n for n in (self._network(net) for net in conn.listAllNetworks()) if n is not None]
        return snap

    def read_domain(self, conn: libvirt.virConnect, uuid: str, handle: Any = None) -> VM | None:
        """The domain's current document, None when it no longer exists. `handle`: a virDomain of this
        connection for it (from an event), which saves the lookup."""
        try:
            dom = handle if _usable(handle, conn) else conn.lookupByUUIDString(uuid)
            records = _domain_stats(conn, [dom])
            if not records and handle is not None:
                self._gone(uuid)
                return None  # the stats skip domains that no longer exist
            stats = records[0][1] if records else {}
            return self._build(dom, stats, bool(dom.autostart()), bool(dom.isPersistent()), None)
        except libvirt.libvirtError as exc:
            if not _not_found(exc):
                raise
            self._gone(uuid)
            return None

    def _gone(self, uuid: str) -> None:
        self._addresses.pop(uuid, None)

    def read_domain_facts(self, conn: libvirt.virConnect, uuids: list[str], handles: dict[str, Any]) -> DomainBatch:
        """State and block sizes of up to BATCH_MAX domains in one call, which are transient in another
        (plus a lookup for each domain without a handle). A domain missing from the result no longer
        exists.

        Blocks while libvirt holds a domain of the batch (a destroy holds one for 1-2 s): the caller
        waits for it only briefly."""
        batch = DomainBatch()
        for uuid in uuids:
            dom = handles.get(uuid)
            if not _usable(dom, conn):
                try:
                    dom = conn.lookupByUUIDString(uuid)
                except libvirt.libvirtError as exc:
                    if not _not_found(exc):
                        raise
                    continue
            batch.doms[uuid] = dom
        if batch.doms:
            # Domains that no longer exist are skipped (not an error) by the qemu and test drivers.
            for dom, stats in _domain_stats(conn, list(batch.doms.values())):
                batch.stats[dom.UUIDString()] = stats
            batch.transient = _transient(conn, [batch.doms[uuid] for uuid in batch.stats])
        return batch

    def build_domain(self, conn: libvirt.virConnect, uuid: str, batch: DomainBatch | None,
                     handle: Any = None) -> VM | None:
        """One domain's document from its batch's facts and its own XMLDesc and autostart;
        without a batch (the batch call was late or failed), a read of its own. None when the domain no
        longer exists."""
        if batch is None:
            return self.read_domain(conn, uuid, handle)
        if batch.gone(uuid):
            self._gone(uuid)
            return None
        dom, stats = batch.doms[uuid], batch.stats[uuid]
        try:
            persistent = uuid not in batch.transient if batch.transient is not None else bool(dom.isPersistent())
            return self._build(dom, stats, bool(dom.autostart()), persistent, None)
        except libvirt.libvirtError as exc:
            if not _not_found(exc):
                raise
            self._gone(uuid)
            return None

    def forget_addresses(self, uuid: str | None = None) -> None:
        if uuid is None:
            self._addresses.clear()
        else:
            self._addresses.pop(uuid, None)

    def _build(self, dom: libvirt.virDomain, stats: dict[str, Any], autostart: bool, persistent: bool,
               volumes: VolumeIndex | None) -> VM:
        xml = Domain.parse(dom.XMLDesc(0))
        if "state.state" in stats:
            state, reason = int(stats["state.state"]), int(stats.get("state.reason", 0))
        else:
            state, reason = dom.state()
        running = state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_BLOCKED)
        disks = _disk_facts(dom, xml, stats, volumes, running)
        addresses: dict[str, list[str]] = {}
        if running and self.addresses_supported and len(xml.interfaces) > 0:
            addresses = self._addresses_of(dom, xml, state == libvirt.VIR_DOMAIN_RUNNING)
        facts = DomainFacts(state, reason, autostart, persistent, disks, addresses)
        return vm_document(self.host, xml, facts, time.time())

    def _addresses_of(self, dom: libvirt.virDomain, xml: Domain, guest_runs: bool) -> dict[str, list[str]]:
        uuid = dom.UUIDString()
        cached = self._addresses.get(uuid)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        wanted = {(n.mac or "").lower() for n in xml.interfaces}
        agent = guest_runs and guest_agent_connected(xml)  # a paused guest's agent cannot answer
        found: dict[str, list[str]] = {}
        for source in _ADDRESS_SOURCES:
            if source == libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT and not agent:
                continue  # asking a missing agent costs a round trip, a hung one seconds
            try:
                answer = addresses_by_mac(dom.interfaceAddresses(source, 0))
            except libvirt.libvirtError:
                continue  # this source does not know (no leases, no agent, not supported): try the next
            for mac, addrs in answer.items():
                if mac in wanted and not found.get(mac):
                    found[mac] = addrs
            if wanted <= set(found):
                break
        self._addresses[uuid] = (now + ADDRESS_TTL_S, found)
        return found

    # ---- pools and networks --------------------------------------------------------------------------

    def read_pool(self, conn: libvirt.virConnect, name: str) -> Pool | None:
        try:
            return self._pool(conn.storagePoolLookupByName(name))
        except libvirt.libvirtError as exc:
            if _not_found(exc):
                return None
            raise

    def read_pools(self, conn: libvirt.virConnect) -> list[Pool]:
        return [p for p in (self._pool(pool) for pool in conn.listAllStoragePools()) if p is not None]

    def read_network(self, conn: libvirt.virConnect, name: str) -> Network | None:
        try:
            return self._network(conn.networkLookupByName(name))
        except libvirt.libvirtError as exc:
            if _not_found(exc):
                return None
            raise

    def _pool(self, pool: libvirt.virStoragePool, index: VolumeIndex | None = None) -> Pool | None:
        try:
            info = pool.info()
            active = info[0] in (libvirt.VIR_STORAGE_POOL_RUNNING, libvirt.VIR_STORAGE_POOL_DEGRADED)
            name = pool.name()
            own = 0
            volumes = pool.listAllVolumes() if active else []
            for vol in volumes:
                facts = _volume_facts(name, vol)
                if facts is None:
                    continue
                own += facts.allocation or 0
                if index is not None:
                    index.add(vol, facts)
            return pool_document(
                self.host,
                StoragePool.parse(pool.XMLDesc(0)),
                info,
                autostart=bool(pool.autostart()),
                persistent=bool(pool.isPersistent()),
                volumes=len(volumes),
                volumes_allocation=own,
                remote=self.remote,
            )
        except libvirt.libvirtError as exc:
            if _not_found(exc):
                return None
            raise

    def _network(self, net: libvirt.virNetwork) -> Network | None:
        try:
            return network_document(
                self.host,
                NetworkXml.parse(net.XMLDesc(0)),
                active=bool(net.isActive()),
                autostart=bool(net.autostart()),
                persistent=bool(net.isPersistent()),
            )
        except libvirt.libvirtError as exc:
            if _not_found(exc):
                return None
            raise


def _domain_stats(conn: libvirt.virConnect, doms: list[libvirt.virDomain] | None) -> list[tuple[Any, dict]]:
    """State and block sizes in one call; NOWAIT skips the sizes of a domain busy with a job."""
    nowait = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
    for flags in (nowait, 0):
        try:
            if doms is None:
                return conn.getAllDomainStats(_STATS, flags)
            return conn.domainListGetStats(doms, _STATS, flags)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT) or not flags:
                raise
    return []


def _transient(conn: libvirt.virConnect, doms: list[libvirt.virDomain]) -> set[str] | None:
    """Which of `doms` are transient, in one call that only waits on them (unlike listAllDomains'
    TRANSIENT filter, which walks the host); None when the driver does not filter a domain list."""
    if not doms:
        return set()
    flags = libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_TRANSIENT | libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT
    try:
        return {dom.UUIDString() for dom, _ in conn.domainListGetStats(doms, libvirt.VIR_DOMAIN_STATS_STATE, flags)}
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            return None
        raise


class VolumeIndex:
    """Every volume of every active pool by path: pool/volume names and sizes for file and block disks.
    Filled while the pools are read, so a resync lists each pool's volumes once."""

    def __init__(self) -> None:
        self.by_path: dict[str, DiskFacts] = {}
        self.by_name: dict[tuple[str, str], DiskFacts] = {}

    def add(self, vol: libvirt.virStorageVol, facts: DiskFacts) -> None:
        key = vol.key()  # local, no round trip; it is the path for file, dir and LVM volumes
        self.by_path[key if key.startswith("/") else vol.path()] = facts
        self.by_name[(facts.pool or "", facts.volume or "")] = facts


def _volume_facts(pool_name: str, vol: libvirt.virStorageVol) -> DiskFacts | None:
    try:
        _type, capacity, allocation = vol.info()
    except libvirt.libvirtError:
        return None  # deleted while we walked the pool
    return DiskFacts(pool_name, vol.name(), capacity, allocation)


def _lookup_volume(conn: libvirt.virConnect, disk: Any) -> DiskFacts | None:
    try:
        if disk.source_pool and disk.source_volume:
            pool = conn.storagePoolLookupByName(disk.source_pool)
            vol = pool.storageVolLookupByName(disk.source_volume)
            pool_name = disk.source_pool
        elif disk.path:
            vol = conn.storageVolLookupByPath(disk.path)
            pool_name = vol.storagePoolLookupByVolume().name()
        else:
            return None
        _type, capacity, allocation = vol.info()
        return DiskFacts(pool_name, vol.name(), capacity, allocation)
    except libvirt.libvirtError:
        return None  # not a volume of any active pool: a plain path


def _disk_facts(dom: libvirt.virDomain, xml: Domain, stats: dict[str, Any],
                volumes: VolumeIndex | None, running: bool) -> dict[str, DiskFacts]:
    """Sizes from the stats call first, then from the pool volume, then blockInfo as the last resort.

    "allocation" here is the host space a disk takes. For a running domain the stats' allocation is
    QEMU's highest written offset and "physical" is the host space; for an inactive one libvirt reads
    the file and "allocation" is the host space. Pick the field that means the same in both states.
    """
    used_field = "physical" if running else "allocation"
    sizes: dict[str, tuple[int | None, int | None]] = {}
    for i in range(int(stats.get("block.count", 0))):
        name = stats.get(f"block.{i}.name")
        if name and f"block.{i}.capacity" in stats:
            sizes[name] = (stats[f"block.{i}.capacity"], stats.get(f"block.{i}.{used_field}"))
    conn = dom.connect()
    facts: dict[str, DiskFacts] = {}
    for disk in xml.disks:
        target = disk.target_dev
        if not target or not (disk.path or disk.source_volume):
            continue  # empty CD-ROM drive, network disk: nothing to size
        if volumes is not None:
            vol = volumes.by_name.get((disk.source_pool or "", disk.source_volume or ""))
            vol = vol or volumes.by_path.get(disk.path or "")
        else:
            vol = _lookup_volume(conn, disk)
        capacity, allocation = sizes.get(target, (None, None))
        if capacity is None and vol is not None:
            capacity, allocation = vol.capacity, vol.allocation
        if capacity is None:
            try:
                # blockInfo's allocation is the host space in both states (unlike the stats' field).
                capacity, allocation, _physical = dom.blockInfo(target)
            except libvirt.libvirtError:
                pass
        facts[target] = DiskFacts(
            vol.pool if vol else None, vol.volume if vol else None, capacity, allocation
        )
    return facts
