"""What the vm.create e2e tests share: a dir pool with Debian's iPXE media and a tiny qcow2 image in it,
an isolated network without addresses, and helpers to submit a create request and wait for its job."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.e2e import virt
from tests.helpers import eventually

IPXE_LKRN = "/usr/lib/ipxe/ipxe.lkrn"
IMAGE_MIB = 64


@dataclass
class Lab:
    pool: str
    path: Path
    network: str
    base_volumes: set[str]
    vms: list[str] = field(default_factory=list)

    def volumes(self) -> set[str]:
        virt.virsh("pool-refresh", self.pool)
        out = virt.virsh("vol-list", self.pool, "--details")
        return {line.split()[0] for line in out.splitlines()[2:] if line.strip()}

    def new_volumes(self) -> set[str]:
        return self.volumes() - self.base_volumes

    def track(self, name: str) -> str:
        self.vms.append(name)
        return name


def upload(pool: str, name: str, source: str, fmt: str) -> None:
    size = os.path.getsize(source)
    virt.virsh("vol-create-as", pool, name, f"{size}b", "--format", fmt)
    virt.virsh("vol-upload", "--pool", pool, name, source)


def make_lab(tmp: Path) -> Lab:
    name = virt.unique_name("e2e-mk")
    path = Path("/var/tmp") / name
    path.mkdir()
    virt.virsh("pool-define-as", name, "dir", "--target", str(path))
    virt.virsh("pool-start", name)
    upload(name, "ipxe.iso", virt.IPXE_ISO, "raw")
    upload(name, "ipxe.lkrn", os.path.realpath(IPXE_LKRN), "raw")
    image = tmp / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), f"{IMAGE_MIB}M"], check=True)
    upload(name, "tiny.qcow2", str(image), "qcow2")
    virt.virsh("vol-create-as", name, "empty.img", "0", "--format", "raw")  # QEMU cannot boot it as a kernel
    net = virt.unique_name("e2e-mknet")
    xml = tmp / f"{net}.xml"
    # Isolated L2 only: no <ip>, so no DHCP, no NAT, no traffic leaves the machine.
    xml.write_text(f"<network><name>{net}</name><bridge name='flbr{net[-6:]}' stp='on' delay='0'/></network>")
    virt.virsh("net-define", str(xml))
    virt.virsh("net-start", net)
    lab = Lab(pool=name, path=path, network=net, base_volumes=set())
    lab.base_volumes = lab.volumes()
    return lab


def destroy_lab(lab: Lab) -> None:
    names = set(lab.vms)
    for name in names:
        virt.virsh("destroy", name, check=False)
    for name in names:
        virt.virsh("undefine", name, "--nvram", check=False)
    virt.virsh("pool-destroy", lab.pool, check=False)
    virt.virsh("pool-undefine", lab.pool, check=False)
    shutil.rmtree(lab.path, ignore_errors=True)
    virt.virsh("net-destroy", lab.network, check=False)
    virt.virsh("net-undefine", lab.network, check=False)


def wait_job(api: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    return eventually(
        lambda: (j := api.get(f"/api/v1/jobs/{job_id}").json()) and j.get("state") in ("succeeded", "failed") and j,
        timeout=timeout, interval=0.1, what=f"job {job_id} finished",
    )


def domains() -> set[str]:
    return {n for n in virt.virsh("list", "--all", "--name").split() if n}


def iso_request(lab: Lab, name: str, **extra) -> dict:
    body = {
        "name": name, "vcpus": 1, "memory_mib": 128,
        "source": {"kind": "iso", "volume": f"{lab.pool}/ipxe.iso"},
        "disks": [{"size_gib": 0.25, "pool": lab.pool}],
        "nics": [], "start": True,
    }
    body.update(extra)
    return body


def cloud_request(lab: Lab, name: str, cloud_init: dict | None = None, **extra) -> dict:
    body = {
        "name": name, "vcpus": 1, "memory_mib": 128,
        "source": {"kind": "cloud_image", "volume": f"{lab.pool}/tiny.qcow2",
                   **({"cloud_init": cloud_init} if cloud_init is not None else {})},
        "disks": [{"size_gib": 1, "pool": lab.pool}],
        "nics": [{"network": lab.network}], "start": True,
    }
    body.update(extra)
    return body
