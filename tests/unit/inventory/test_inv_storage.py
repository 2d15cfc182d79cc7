"""Storage accounting: every filesystem / volume group counted once, used never above capacity."""

from __future__ import annotations

import os

from flint.contracts.inventory import Pool
from services.inventory.storage import group_pool, mount_point, summarize

GB = 10**9


def pool(name, group, capacity, available, allocation, host="h1", active=True, type_="dir"):
    return Pool(host=host, name=name, type=type_, active=active, capacity=capacity, available=available,
                allocation=allocation, group_id=group, group_label=f"label of {group}", target=f"/p/{name}")


def test_two_pools_on_one_filesystem_are_counted_once_the_109_percent_bug():
    # The old tool added both pools of the 187 GB disk: 2042 GB "used" of 187 GB. Here: once per filesystem.
    pools = [
        pool("images", "fs:1", 187 * GB, 100 * GB, 60 * GB),
        pool("isos", "fs:1", 187 * GB, 100 * GB, 27 * GB),
        pool("fast", "fs:2", 500 * GB, 400 * GB, 100 * GB),
    ]
    summary = summarize(pools, ["h1"])
    (host,) = summary.hosts
    assert (host.capacity, host.used, host.free) == (687 * GB, 187 * GB, 500 * GB)
    assert host.used <= host.capacity
    by_id = {g.id: g for g in host.groups}
    assert set(by_id) == {"fs:1", "fs:2"}
    shared = by_id["fs:1"]
    assert (shared.capacity, shared.used, shared.free) == (187 * GB, 87 * GB, 100 * GB)
    # Each pool keeps its own allocation beside the group figures.
    assert {p.name: p.allocation for p in shared.pools} == {"images": 60 * GB, "isos": 27 * GB}
    assert (summary.overall.capacity, summary.overall.used, summary.overall.free) == (687 * GB, 187 * GB, 500 * GB)


def test_pools_refreshed_at_different_moments_take_the_smaller_free_figure():
    pools = [pool("a", "fs:1", 100, 40, 10), pool("b", "fs:1", 100, 38, 5)]
    (group,) = summarize(pools, ["h1"]).hosts[0].groups
    assert (group.capacity, group.used, group.free) == (100, 62, 38)


def test_used_is_never_negative_nor_above_capacity():
    pools = [pool("odd", "fs:9", 100, 150, 0), pool("neg", "fs:8", 100, -5, 0)]
    groups = {g.id: g for g in summarize(pools, ["h1"]).hosts[0].groups}
    assert (groups["fs:9"].used, groups["fs:9"].free) == (0, 100)
    assert (groups["fs:8"].used, groups["fs:8"].free) == (100, 0)
    for g in groups.values():
        assert 0 <= g.used <= g.capacity


def test_inactive_pools_are_listed_with_zeros_and_not_counted():
    pools = [pool("on", "fs:1", 100, 60, 40), pool("off", "fs:1", 100, 60, 40, active=False)]
    host = summarize(pools, ["h1"]).hosts[0]
    assert (host.capacity, host.used, host.free) == (100, 40, 60)
    off = next(g for g in host.groups if any(p.name == "off" for p in g.pools))
    assert (off.capacity, off.used, off.free) == (0, 0, 0)
    assert [(p.name, p.active, p.allocation, p.capacity) for p in off.pools] == [("off", False, 0, 0)]


def test_hosts_sum_to_overall_and_keep_their_order():
    pools = [
        pool("a", "fs:1", 100, 50, 50, host="h2"),
        pool("b", "fs:1", 300, 100, 200, host="h1"),  # same st_dev number on another machine: another disk
        pool("c", "vg:data", 1000, 1000, 0, host="h3", type_="logical"),
    ]
    summary = summarize(pools, ["h1", "h2", "empty"])
    assert [h.host for h in summary.hosts] == ["h1", "h2", "empty", "h3"]
    assert [(h.capacity, h.used) for h in summary.hosts] == [(300, 200), (100, 50), (0, 0), (1000, 0)]
    assert (summary.overall.capacity, summary.overall.used, summary.overall.free) == (1400, 250, 1150)


def test_documents_without_group_id_fall_back_to_libvirt_figures():
    pools = [pool("a", "", 100, 30, 10), pool("b", "", 100, 30, 60), pool("c", "", 50, 30, 20)]
    host = summarize(pools, ["h1"]).hosts[0]
    assert sorted(g.capacity for g in host.groups) == [50, 100]
    assert host.capacity == 150


def fake_stat(devices):
    def stat(path):
        if path not in devices:
            raise FileNotFoundError(path)
        return os.stat_result((0, 0, devices[path], 0, 0, 0, 0, 0, 0, 0))

    return stat


def test_group_pool_by_pool_type_and_place():
    stat = fake_stat({"/": 1, "/srv": 2, "/srv/a": 2, "/srv/b": 2, "/mnt/nfs": 3, "/mnt": 1})
    assert group_pool("/srv/a", "dir", None, 9, 1, False, stat) == ("fs:2", "/srv")
    assert group_pool("/srv/b", "fs", None, 9, 1, False, stat) == ("fs:2", "/srv")
    assert group_pool("/mnt/nfs", "netfs", None, 9, 1, False, stat) == ("fs:3", "/mnt/nfs")
    assert group_pool("/dev/vg0", "logical", "vg0", 9, 1, False, stat) == ("vg:vg0", "volume group vg0")
    # Remote hosts: never stat a local path on their behalf.
    assert group_pool("/srv/a", "dir", None, 9, 1, True, stat)[0] == "libvirt:9:1"
    # A target that does not exist here, or a pool type without a filesystem target.
    assert group_pool("/gone", "dir", None, 9, 1, False, stat)[0] == "libvirt:9:1"
    assert group_pool("/dev/disk/by-path", "iscsi", None, 9, 1, False, stat)[0] == "libvirt:9:1"


def test_group_pool_on_this_machine(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = group_pool(str(tmp_path / "one"), "dir", None, 0, 0, False)
    second = group_pool(str(tmp_path / "two"), "dir", None, 0, 0, False)
    assert first == second
    assert first[0] == f"fs:{os.stat(tmp_path).st_dev}"
    assert str(tmp_path).startswith(first[1])
    assert mount_point("/", os.stat("/").st_dev) == "/"
