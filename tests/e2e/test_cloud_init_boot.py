"""Proof that cloud-init really reads Flint's seed: a minimal Debian cloud image built here (debootstrap, no
bootloader), uploaded through the API, a VM created from it as an overlay with a cloud-init request and
booted by direct kernel boot (kernel, initrd and command line from pool volumes). The guest's serial
console must show cloud-init finishing from the NoCloud seed, the hostname asked for, the user with its
SSH key, and the runcmd marker — all written by the guest itself.

Opt-in (several minutes; CI's budget is 20): `FLINT_SLOW=1` or `-m slow`, e.g.
    FLINT_SLOW=1 .venv/bin/python -m pytest tests/e2e/test_cloud_init_boot.py
Needs debootstrap (`apt-get install debootstrap`) and deb.debian.org (or FLINT_TEST_DEBIAN_MIRROR); the
.deb files are cached in /var/cache/flint-test-debs (FLINT_TEST_DEB_CACHE)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e import virt
from tests.e2e.cloudimage_support import CMDLINE, build_debian_image, missing_tools
from tests.e2e.storage_support import SCRATCH, remove_pool, token_client, wait_job
from tests.helpers import eventually

pytestmark = [
    pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800),
    # evaluated before any fixture (no stack is started for a skipped test)
    pytest.mark.skipif("not (os.environ.get('FLINT_SLOW') or 'slow' in (config.getoption('-m') or ''))",
                       reason="slow (builds a Debian image, boots it under TCG): opt in with FLINT_SLOW=1 or -m slow"),
    pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} "
                       "(apt-get install debootstrap e2fsprogs qemu-utils)"),
]
SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl "
           "alice@example")
BOOT_TIMEOUT_S = float(os.environ.get("FLINT_TEST_BOOT_TIMEOUT", "600"))  # ~35 s under TCG on a quiet machine

# Reads the serial console through libvirt in a process of its own (libvirtaio owns this process's libvirt
# event loop once the async tiers ran) and appends it to a file.
_SERIAL_READER = """
import sys, libvirt
conn = libvirt.open("qemu:///system")
stream = conn.newStream(0)
conn.lookupByName(sys.argv[1]).openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
with open(sys.argv[2], "ab", buffering=0) as out:
    while data := stream.recv(65536):
        out.write(data)
"""


def _upload(api, pool: str, path: Path) -> None:
    def chunks():
        with path.open("rb") as f:
            while data := f.read(1 << 20):
                yield data

    resp = api.put(f"/hosts/local/pools/{pool}/volumes/{path.name}/content", content=chunks(),
                   headers={"Content-Length": str(path.stat().st_size)})
    assert resp.status_code == 202, resp.text
    assert wait_job(api, resp.json()["id"])["state"] == "succeeded"


def test_cloud_init_reads_the_seed_of_a_vm_made_from_a_cloud_image(stack):
    work = Path(SCRATCH) / virt.unique_name("flint-ci-image")
    work.mkdir()
    pool, name = virt.unique_name("e2e-ci-boot"), virt.unique_name("e2e-ci-vm")
    marker = f"flint-runcmd-{secrets.token_hex(4)}"
    serial_log = work / "serial.log"
    reader = None
    api = token_client(stack, "admin", pool)
    try:
        t = time.monotonic()
        image = build_debian_image(work)
        print(f"\nDebian image built in {time.monotonic() - t:.0f} s: {image.qcow2.stat().st_size >> 20} MiB qcow2")
        resp = api.post("/hosts/local/pools", json={"name": pool, "type": "dir", "target": str(work / "pool")})
        assert resp.status_code == 201, resp.text
        for path in (image.qcow2, image.kernel, image.initrd):
            _upload(api, pool, path)

        body = {
            "name": name, "vcpus": 1, "memory_mib": 512, "start": False, "disks": [], "nics": [],
            "source": {"kind": "cloud_image", "volume": f"{pool}/{image.qcow2.name}", "cloud_init": {
                "hostname": "proof-01", "user": "alice", "ssh_authorized_keys": [SSH_KEY],
                "runcmd": [
                    "echo \"FLINT-PROOF host=$(hostname) user=$(getent passwd alice | cut -d: -f1,6) "
                    "key=$(cat /home/alice/.ssh/authorized_keys)\" > /dev/ttyS0",
                    f"echo {marker} > /dev/ttyS0",
                ],
            }},
            "direct_boot": {"kernel": f"{pool}/{image.kernel.name}", "initrd": f"{pool}/{image.initrd.name}",
                            "cmdline": CMDLINE},
        }
        resp = api.post("/vms", json=body)
        assert resp.status_code == 202, resp.text
        job = wait_job(api, resp.json()["id"])
        assert job["state"] == "succeeded", job
        vm_id = job["result"]["id"]
        xml = virt.virsh("dumpxml", name)
        assert f"{work / 'pool' / image.kernel.name}" in xml and "root=/dev/vda" in xml

        assert api.post(f"/vms/{vm_id}/actions", json={"action": "start"}).status_code in (200, 202)
        eventually(lambda: virt.virsh("domstate", name).strip() == "running", timeout=60, what="the VM runs")
        reader = subprocess.Popen([sys.executable, "-c", _SERIAL_READER, name, str(serial_log)],
                                  stderr=subprocess.DEVNULL)
        t = time.monotonic()

        def proof() -> str | None:
            text = serial_log.read_bytes().decode(errors="replace") if serial_log.exists() else ""
            return text if marker in text and "FLINT-PROOF" in text and "finished at" in text else None

        text = eventually(proof, timeout=BOOT_TIMEOUT_S, interval=1, what="cloud-init's runcmd marker on the serial")
        print(f"cloud-init finished {time.monotonic() - t:.0f} s after the start")
        proof_line = next(line for line in text.splitlines() if "FLINT-PROOF" in line and "$(" not in line)
        assert "host=proof-01" in proof_line, proof_line
        assert "user=alice:/home/alice" in proof_line, proof_line
        assert f"key={SSH_KEY}" in proof_line, proof_line
        finished = next(line for line in text.splitlines() if "Cloud-init v." in line and "finished at" in line)
        assert "NoCloud" in finished, finished  # the datasource was our seed, not the fallback None
    finally:
        if reader is not None:
            reader.send_signal(signal.SIGTERM)
            reader.wait(10)
        virt.virsh("destroy", name, check=False)
        virt.virsh("undefine", name, "--nvram", check=False)
        remove_pool(pool)
        shutil.rmtree(work, ignore_errors=True)
