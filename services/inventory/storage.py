"""Storage accounting that counts every filesystem and volume group once.

The old tool added up capacity and use per pool, so two pools on one disk showed "109% used". Here each
pool is first assigned to the *group* it really lives on (group_pool), and summarize() counts capacity,
used and free once per group; each pool's own allocation is listed beside it.

PURE: no libvirt, no NATS. The inventory service calls group_pool when it builds a Pool document; the
gateway imports summarize to serve GET /api/v1/storage/summary from the documents in KV.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from flint.contracts.inventory import (
    HostStorage,
    Pool,
    StorageGroup,
    StoragePoolShare,
    StorageSummary,
    StorageTotals,
)

# Pool types whose target directory sits on a filesystem this machine can stat.
FILESYSTEM_POOL_TYPES = frozenset({"dir", "fs", "netfs"})

StatFn = Callable[[str], os.stat_result]


def libvirt_group_id(capacity: int, available: int) -> str:
    """Where only libvirt's figures are known: pools on one filesystem report identical figures."""
    return f"libvirt:{capacity}:{available}"


def group_pool(
    target: str | None,
    pool_type: str,
    source_name: str | None,
    capacity: int,
    available: int,
    remote: bool,
    stat: StatFn = os.stat,
) -> tuple[str, str]:
    """(group_id, label) of the filesystem or volume group a pool's storage lives on.

    - logical pools: "vg:<volume group>"; zfs pools: "zfs:<zpool>" (space is shared per VG / zpool);
    - local dir/fs/netfs pools: "fs:<st_dev of the target>", labelled with the mount point;
    - remote hosts, other pool types, or a target that cannot be stat'ed: "libvirt:<capacity>:<available>".
      Never stat a path on behalf of a remote host: the local path names something else.
    """
    if pool_type == "logical" and source_name:
        return f"vg:{source_name}", f"volume group {source_name}"
    if pool_type == "zfs" and source_name:
        return f"zfs:{source_name}", f"zpool {source_name}"
    if not remote and target and pool_type in FILESYSTEM_POOL_TYPES:
        try:
            dev = stat(target).st_dev
        except OSError:
            pass
        else:
            return f"fs:{dev}", mount_point(target, dev, stat)
    label = f"storage under {target}" if target else "storage reported by libvirt"
    return libvirt_group_id(capacity, available), label


def mount_point(path: str, dev: int, stat: StatFn = os.stat) -> str:
    """Walk up from `path` while the device stays `dev`: the last directory on it is the mount point."""
    current = os.path.normpath(os.path.abspath(path))
    while current != "/":
        parent = os.path.dirname(current)
        try:
            if stat(parent).st_dev != dev:
                break
        except OSError:
            break
        current = parent
    return current


def summarize(pools: Iterable[Pool], hosts: Iterable[str]) -> StorageSummary:
    """Per host: pools grouped by group_id, each group counted once; host totals sum the groups.

    Hosts come in the order given (hosts without pools get zeros); hosts only seen in `pools` follow,
    sorted. Only active pools count toward figures: inactive ones are listed with zeros.
    """
    by_host: dict[str, list[Pool]] = {h: [] for h in hosts}
    for pool in pools:
        by_host.setdefault(pool.host, []).append(pool)
    order = list(dict.fromkeys(hosts))
    order += sorted(h for h in by_host if h not in order)

    host_rows = [_summarize_host(host, by_host[host]) for host in order]
    overall = StorageTotals(
        capacity=sum(h.capacity for h in host_rows),
        used=sum(h.used for h in host_rows),
        free=sum(h.free for h in host_rows),
    )
    return StorageSummary(overall=overall, hosts=host_rows)


def _summarize_host(host: str, pools: list[Pool]) -> HostStorage:
    groups: dict[str, list[Pool]] = {}
    for pool in sorted(pools, key=lambda p: p.name):
        gid = pool.group_id if pool.active else f"inactive:{pool.name}"
        if pool.active and not gid:
            gid = libvirt_group_id(pool.capacity, pool.available)
        groups.setdefault(gid, []).append(pool)
    rows = [_summarize_group(gid, members) for gid, members in groups.items()]
    rows.sort(key=lambda g: (g.capacity == 0, g.label, g.id))
    return HostStorage(
        host=host,
        capacity=sum(g.capacity for g in rows),
        used=sum(g.used for g in rows),
        free=sum(g.free for g in rows),
        groups=rows,
    )


def _summarize_group(group_id: str, pools: list[Pool]) -> StorageGroup:
    active = [p for p in pools if p.active]
    capacity = max((max(p.capacity, 0) for p in active), default=0)
    # Pools refreshed at different moments disagree a little on free space: take the smallest figure,
    # so "used" errs high rather than hiding use; clamp so used is never negative nor above capacity.
    free = min((max(p.available, 0) for p in active), default=0)
    free = min(free, capacity)
    label = next((p.group_label for p in pools if p.group_label), "") or pools[0].name
    if not active:
        label = f"{pools[0].name} (inactive)"
    return StorageGroup(
        id=group_id,
        label=label,
        capacity=capacity,
        used=capacity - free,
        free=free,
        pools=[_share(p) for p in pools],
    )


def _share(pool: Pool) -> StoragePoolShare:
    if not pool.active:
        return StoragePoolShare(
            name=pool.name, type=pool.type, target=pool.target, allocation=0, capacity=0, available=0, active=False
        )
    return StoragePoolShare(
        name=pool.name,
        type=pool.type,
        target=pool.target,
        allocation=pool.allocation,
        capacity=pool.capacity,
        available=pool.available,
        active=True,
    )
