"""Rates from getAllDomainStats counters, and the hour of samples kept per VM."""

from __future__ import annotations

import pytest

from services.inventory.metrics import MetricsStore, RawStats, compute_sample

STATS = {
    "state.state": 1,
    "cpu.time": 10_000_000_000,
    "vcpu.current": 2,
    "balloon.current": 1048576,  # KiB
    "balloon.maximum": 1048576,
    "balloon.rss": 300000,
    "block.count": 2,
    "block.0.name": "vda",
    "block.0.rd.bytes": 1000,
    "block.0.wr.bytes": 2000,
    "block.1.name": "vdb",
    "block.1.rd.bytes": 500,
    "block.1.wr.bytes": 0,
    "net.count": 1,
    "net.0.rx.bytes": 4000,
    "net.0.tx.bytes": 8000,
}


def later(stats, **changes):
    new = dict(stats)
    new.update({k.replace("__", "."): v for k, v in changes.items()})
    return new


def test_raw_stats_sum_devices_and_convert_kib():
    raw = RawStats.from_stats(STATS, t=1.0, wall=100.0)
    assert raw.disk_read_bytes == 1500 and raw.disk_write_bytes == 2000
    assert raw.net_rx_bytes == 4000 and raw.net_tx_bytes == 8000
    assert raw.memory_total_bytes == 1024 * 2**20
    assert raw.memory_used_bytes == 300000 * 1024  # rss without guest figures
    assert raw.vcpus == 2


def test_memory_prefers_the_guests_own_figures_then_rss_then_current():
    guest = dict(STATS, **{"balloon.available": 1000000, "balloon.usable": 600000, "balloon.unused": 500000})
    assert RawStats.from_stats(guest, 0, 0).memory_used_bytes == 400000 * 1024
    old_guest = {k: v for k, v in guest.items() if k != "balloon.usable"}
    assert RawStats.from_stats(old_guest, 0, 0).memory_used_bytes == 500000 * 1024
    bare = {k: v for k, v in STATS.items() if k != "balloon.rss"}
    assert RawStats.from_stats(bare, 0, 0).memory_used_bytes == 1048576 * 1024


def test_rates_between_two_readings():
    first = RawStats.from_stats(STATS, t=10.0, wall=1000.0)
    cur_stats = later(
        STATS,
        cpu__time=10_000_000_000 + 5_000_000_000,  # 5 s of CPU in 5 s on 2 vCPUs: 50 %
        **{"block.0.rd.bytes": 1000 + 5000, "block.1.wr.bytes": 10_000, "net.0.rx.bytes": 4000 + 500},
    )
    cur = RawStats.from_stats(cur_stats, t=15.0, wall=1005.0)
    s = compute_sample(first, cur)
    assert s.t == 1005.0
    assert s.cpu_percent == pytest.approx(50.0)
    assert s.disk_read_bps == pytest.approx(1000.0)
    assert s.disk_write_bps == pytest.approx(2000.0)
    assert s.net_rx_bps == pytest.approx(100.0)
    assert s.net_tx_bps == 0.0


def test_first_reading_and_counter_resets_give_no_rates():
    first = RawStats.from_stats(STATS, t=0.0, wall=0.0)
    s = compute_sample(None, first)
    assert (s.cpu_percent, s.disk_read_bps, s.memory_used_bytes) == (0.0, 0.0, 300000 * 1024)
    restarted = RawStats.from_stats(later(STATS, cpu__time=1000, **{"net.0.tx.bytes": 1}), t=5.0, wall=5.0)
    s = compute_sample(first, restarted)
    assert s.cpu_percent == 0.0 and s.net_tx_bps == 0.0


def test_cpu_percent_is_capped_at_100():
    first = RawStats.from_stats(STATS, t=0.0, wall=0.0)
    cur = RawStats.from_stats(later(STATS, cpu__time=10_000_000_000 + 30_000_000_000), t=5.0, wall=5.0)
    assert compute_sample(first, cur).cpu_percent == 100.0


def test_store_keeps_the_last_hour_per_vm():
    store = MetricsStore(history=720)
    for i in range(800):
        store.add("a", RawStats.from_stats(later(STATS, cpu__time=i * 10**9), t=i * 5.0, wall=i * 5.0))
    samples = store.samples("a")
    assert len(samples) == 720
    assert samples[0].t == 80 * 5.0 and samples[-1].t == 799 * 5.0
    assert samples[-1].cpu_percent == pytest.approx(10.0)  # 1 s per 5 s on 2 vCPUs
    assert [s.t for s in store.samples("a", since=798 * 5.0)] == [798 * 5.0, 799 * 5.0]
    assert store.samples("nobody") == []


def test_store_forgets_stopped_and_deleted_vms():
    store = MetricsStore()
    store.add("a", RawStats.from_stats(STATS, 0.0, 0.0))
    store.add("b", RawStats.from_stats(STATS, 0.0, 0.0))
    store.forget_raw_except({"a"})  # b stopped: its next start has no previous reading
    second = store.add("b", RawStats.from_stats(later(STATS, cpu__time=99 * 10**9), 5.0, 5.0))
    assert second.cpu_percent == 0.0
    store.retain({"a"})
    assert store.samples("b") == [] and len(store) == 1
