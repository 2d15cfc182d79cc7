"""A minimal Debian cloud image built in the test, for the proof that cloud-init reads Flint's seed.

debootstrap --variant=minbase with a kernel, systemd and cloud-init (NoCloud only), the root file system
written into an image file with ``mkfs.ext4 -d`` (no loop device, no mount), converted to qcow2. The
image has no partition table and no bootloader: the guest boots by direct kernel boot with the kernel and
initrd taken out of the tree, ``root=/dev/vda``.

The .deb files are cached in FLINT_TEST_DEB_CACHE (default /var/cache/flint-test-debs, outside the
repository): the first build downloads about 150 MB from deb.debian.org and takes a few minutes; later
builds take about two. Needs root and debootstrap (`apt-get install debootstrap`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SUITE = os.environ.get("FLINT_TEST_DEBIAN_SUITE", "bookworm")
MIRROR = os.environ.get("FLINT_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEB_CACHE = Path(os.environ.get("FLINT_TEST_DEB_CACHE", "/var/cache/flint-test-debs"))
PACKAGES = ["linux-image-amd64", "initramfs-tools", "systemd-sysv", "udev", "dbus", "e2fsprogs", "ifupdown",
            "cloud-init", "python3-cffi-backend"]
IMAGE_SIZE = "2G"
CMDLINE = "root=/dev/vda rw console=ttyS0,115200 net.ifnames=0"


@dataclass
class CloudImage:
    qcow2: Path
    kernel: Path
    initrd: Path


def missing_tools() -> list[str]:
    return [t for t in ("debootstrap", "mkfs.ext4", "qemu-img") if shutil.which(t) is None]


def _run(*cmd: str, timeout: float = 1200) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")


def build_debian_image(work: Path) -> CloudImage:
    """Build the image under ``work`` (which must be on a file system that allows device nodes)."""
    root = work / "root"
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    _run("debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", f"--cache-dir={DEB_CACHE}",
         SUITE, str(root), MIRROR)
    cfg = root / "etc" / "cloud" / "cloud.cfg.d" / "90-flint-test.cfg"
    cfg.write_text("datasource_list: [ NoCloud, None ]\n")
    (root / "etc" / "fstab").write_text("/dev/vda / ext4 defaults 0 1\n")
    for leftover in ("etc/hostname", "etc/machine-id"):
        path = root / leftover
        if path.exists():
            path.write_text("")  # cloud-init sets the hostname; systemd makes a machine id on first boot
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError(f"no kernel or initrd in {root / 'boot'}")
    kernel, initrd = work / "vmlinuz", work / "initrd.img"
    shutil.copyfile(kernels[-1], kernel)
    shutil.copyfile(initrds[-1], initrd)
    raw = work / "rootfs.raw"
    _run("truncate", "-s", IMAGE_SIZE, str(raw))
    _run("mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(raw))
    qcow2 = work / "debian-cloud.qcow2"
    _run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2))
    raw.unlink()
    shutil.rmtree(root, ignore_errors=True)
    return CloudImage(qcow2=qcow2, kernel=kernel, initrd=initrd)


if __name__ == "__main__":  # warm the cache or try the build by hand: python -m tests.e2e.cloudimage_support DIR
    import sys
    import time

    t = time.monotonic()
    print(build_debian_image(Path(sys.argv[1])), f"{time.monotonic() - t:.0f} s")
