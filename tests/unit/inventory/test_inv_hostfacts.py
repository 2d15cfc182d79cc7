"""Host figures: CPU from counter deltas, memory as `free` counts it, and when a change is worth telling."""

from __future__ import annotations

import msgspec

from flint.contracts.inventory import HostFacts
from services.inventory.hostfacts import changed_meaningfully, host_cpu_percent, local_uptime, memory_figures
from services.inventory.reader import is_remote


def test_host_cpu_percent_from_deltas():
    prev = {"kernel": 100, "user": 300, "idle": 1500, "iowait": 100}
    cur = {"kernel": 200, "user": 600, "idle": 2000, "iowait": 100}  # 400 busy of 900
    assert host_cpu_percent(prev, cur) == 44.4
    assert host_cpu_percent(None, cur) == 0.0
    assert host_cpu_percent(cur, cur) == 0.0


def test_memory_counts_cache_and_buffers_as_free():
    total, free = memory_figures({"total": 8000000, "free": 1000000, "buffers": 200000, "cached": 3000000})
    assert total == 8000000 * 1024
    assert free == 4200000 * 1024


def test_small_wobbles_are_not_meaningful_but_drifts_add_up():
    base = HostFacts(name="h", uri="qemu:///system", memory_total_bytes=100 * 2**30,
                     memory_free_bytes=50 * 2**30, cpu_percent=12.0, uptime_s=10, updated_at=1)
    wobble = msgspec.structs.replace(base, memory_free_bytes=50 * 2**30 + 2**20, cpu_percent=14.9, uptime_s=15,
                                     updated_at=6)
    assert changed_meaningfully(None, base)
    assert not changed_meaningfully(base, wobble)
    assert changed_meaningfully(base, msgspec.structs.replace(base, cpu_percent=17.0))
    assert changed_meaningfully(base, msgspec.structs.replace(base, memory_free_bytes=47 * 2**30))
    assert changed_meaningfully(base, msgspec.structs.replace(base, libvirt_version="10.0.0"))
    assert changed_meaningfully(base, msgspec.structs.replace(base, state="unreachable"))


def test_remote_uris_and_uptime(tmp_path):
    assert not is_remote("qemu:///system")
    assert not is_remote("test:///tmp/node.xml")
    assert is_remote("qemu+ssh://root@10.0.0.2/system")
    assert is_remote("qemu+libssh://root@127.0.0.1:2222/system?keyfile=/k")
    up = tmp_path / "uptime"
    up.write_text("12345.67 99999.00\n")
    assert local_uptime(str(up)) == 12345.67
    assert local_uptime(str(tmp_path / "missing")) == 0.0
