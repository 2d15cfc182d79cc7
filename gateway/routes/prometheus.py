"""GET /metrics in Prometheus text format: host figures and each VM's latest sample."""

from __future__ import annotations

from litestar import Request, Response, get

from gateway.deps import gw


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    g = gw(request)
    view = g.view
    lines = [
        "# HELP flint_host_up 1 when the host sent a heartbeat within the last 15 s",
        "# TYPE flint_host_up gauge",
    ]
    hosts = [h for h in (view.host(n) for n in view.host_names()) if h is not None]
    for h in hosts:
        lines.append(f'flint_host_up{{host="{_label(h.name)}"}} {1 if h.state == "up" else 0}')
    lines += ["# TYPE flint_host_memory_total_bytes gauge"]
    lines += [f'flint_host_memory_total_bytes{{host="{_label(h.name)}"}} {h.memory_total_bytes}' for h in hosts]
    lines += ["# TYPE flint_host_memory_free_bytes gauge"]
    lines += [f'flint_host_memory_free_bytes{{host="{_label(h.name)}"}} {h.memory_free_bytes}' for h in hosts]
    lines += ["# TYPE flint_host_cpu_percent gauge"]
    lines += [f'flint_host_cpu_percent{{host="{_label(h.name)}"}} {h.cpu_percent}' for h in hosts]
    lines += ["# HELP flint_vm_running 1 when the VM is running", "# TYPE flint_vm_running gauge"]
    vms = view.vms_of()
    for vm in vms:
        labels = f'host="{_label(vm.host)}",vm="{_label(vm.name)}",id="{vm.id}"'
        lines.append(f"flint_vm_running{{{labels}}} {1 if vm.state == 'running' else 0}")
    samples = g.hub.latest_samples
    for metric, field in (
        ("flint_vm_cpu_percent", "cpu_percent"),
        ("flint_vm_memory_used_bytes", "memory_used_bytes"),
        ("flint_vm_disk_read_bytes_per_second", "disk_read_bps"),
        ("flint_vm_disk_write_bytes_per_second", "disk_write_bps"),
        ("flint_vm_net_rx_bytes_per_second", "net_rx_bps"),
        ("flint_vm_net_tx_bytes_per_second", "net_tx_bps"),
    ):
        lines.append(f"# TYPE {metric} gauge")
        for vm in vms:
            sample = samples.get(vm.id)
            if sample is not None:
                labels = f'host="{_label(vm.host)}",vm="{_label(vm.name)}",id="{vm.id}"'
                lines.append(f"{metric}{{{labels}}} {sample.get(field, 0)}")
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
