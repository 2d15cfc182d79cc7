"""Acting on the real libvirtd from outside Flint, as another tool (virsh) would."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from lxml import etree

URI = "qemu:///system"
IPXE_ISO = "/usr/lib/ipxe/ipxe.iso"


def virsh(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"virsh {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def unique_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def tiny_domain_xml(name: str, memory_mib: int = 64) -> str:
    """A TCG guest that boots Debian's ipxe.iso: no disk to clean up, no network traffic."""
    dom = etree.Element("domain", type="qemu")
    etree.SubElement(dom, "name").text = name
    etree.SubElement(dom, "memory", unit="MiB").text = str(memory_mib)
    etree.SubElement(dom, "vcpu").text = "1"
    os_ = etree.SubElement(dom, "os")
    etree.SubElement(os_, "type", arch="x86_64").text = "hvm"
    etree.SubElement(os_, "boot", dev="cdrom")
    devices = etree.SubElement(dom, "devices")
    disk = etree.SubElement(devices, "disk", type="file", device="cdrom")
    etree.SubElement(disk, "source", file=IPXE_ISO)
    etree.SubElement(disk, "target", dev="hdc", bus="ide")
    etree.SubElement(disk, "readonly")
    etree.SubElement(devices, "graphics", type="vnc", port="-1", autoport="yes", listen="127.0.0.1")
    etree.SubElement(devices, "serial", type="pty")
    return etree.tostring(dom, encoding="unicode")


def define(name: str, tmp: Path, memory_mib: int = 64) -> str:
    path = tmp / f"{name}.xml"
    path.write_text(tiny_domain_xml(name, memory_mib))
    virsh("define", str(path))
    return virsh("domuuid", name).strip()


def remove(name: str) -> None:
    virsh("destroy", name, check=False)
    virsh("undefine", name, "--nvram", check=False)


@contextlib.contextmanager
def dir_pool(prefix: str):
    """A started dir pool under /var/tmp, gone afterwards with what it holds: (name, path)."""
    name = unique_name(prefix)
    path = Path("/var/tmp") / name
    path.mkdir()
    try:
        virsh("pool-define-as", name, "dir", "--target", str(path))
        virsh("pool-start", name)
        yield name, path
    finally:
        virsh("pool-destroy", name, check=False)
        virsh("pool-undefine", name, check=False)
        shutil.rmtree(path, ignore_errors=True)


def libvirtd_pid() -> int | None:
    try:
        pid = int(Path("/run/libvirtd.pid").read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def restart_libvirtd(timeout: float = 90) -> None:
    """Restart the daemon the way its owner would: systemd where it runs, else the daemon by hand."""
    if Path("/run/systemd/system").exists():
        subprocess.run(["systemctl", "restart", "libvirtd"], check=True)
    else:
        pid = libvirtd_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
        subprocess.run(["libvirtd", "-d"], check=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, timeout=30).returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError("libvirtd did not come back")
