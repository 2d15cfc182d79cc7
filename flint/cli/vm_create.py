"""`flint vm create`: a POST /vms request from options, and with --wait the job followed to its end."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from flint.cli.client import ApiError, Client

_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*(m|mb|mib|g|gb|gib|t|tb|tib)?\s*$")
_FACTOR_MIB = {"m": 1, "g": 1024, "t": 1024 * 1024}


def parse_memory(text: str) -> int:
    """'512', '512M', '2G', '1.5GiB' -> MiB."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size (e.g. 512, 512M, 2G)")
    unit = (m.group(2) or "m")[0].lower()
    return int(float(m.group(1)) * _FACTOR_MIB[unit])


def parse_disk(text: str) -> tuple[float, str | None]:
    """'20' or '20@pool' -> (GiB, pool)."""
    size, _, pool = text.partition("@")
    try:
        gib = float(size.rstrip("gG"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SIZE_GIB[@pool] (e.g. 20 or 20@vms)") from None
    return gib, pool or None


def _csv(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _ssh_keys(paths: list[str] | None) -> list[str]:
    keys = []
    for path in paths or []:
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise ApiError(0, f"--ssh-key {path}: {exc.strerror}") from None
        keys += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return keys


def _cloud_init(args) -> dict[str, Any] | None:
    ci: dict[str, Any] = {}
    if args.hostname:
        ci["hostname"] = args.hostname
    if args.user:
        ci["user"] = args.user
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line.strip():
            raise ApiError(0, "--password-stdin: no password on standard input")
        ci["password"] = line.rstrip("\r\n")
    keys = _ssh_keys(args.ssh_key)
    if keys:
        ci["ssh_authorized_keys"] = keys
    if args.packages:
        ci["packages"] = _csv(args.packages)
    if args.runcmd:
        ci["runcmd"] = list(args.runcmd)
    if args.user_data:
        try:
            ci["user_data"] = Path(args.user_data).read_text()
        except OSError as exc:
            raise ApiError(0, f"--user-data {args.user_data}: {exc.strerror}") from None
    dns = _csv(args.dns)
    if args.static:
        ci["network"] = {"dhcp": False, "address": args.static, "gateway": args.gateway, "dns": dns}
    elif args.gateway:
        raise ApiError(0, "--gateway needs --static ADDRESS/PREFIX")
    elif dns:
        ci["network"] = {"dhcp": True, "dns": dns}
    return ci or None


def _install_source(args) -> dict[str, Any]:
    """--location URL [--kernel URL --initrd URL] --kernel-args ..., or --pxe on the first --network/--bridge."""
    if args.pxe:
        if args.network:
            return {"kind": "pxe", "network": args.network[0]}
        if args.bridge:
            return {"kind": "pxe", "bridge": args.bridge[0]}
        raise ApiError(0, "--pxe boots from a NIC: add --network NAME or --bridge NAME")
    source: dict[str, Any] = {"kind": "network_install", "location": args.location,
                              "kernel_args": args.kernel_args or ""}
    for key in ("kernel", "initrd"):
        value = getattr(args, key)
        if value and value.startswith(("http://", "https://")):
            source[key] = value  # the installer's own files, instead of the tree's
            setattr(args, key, None)
    return source


def build_body(args) -> dict[str, Any]:
    if args.location or args.pxe:
        source: dict[str, Any] = _install_source(args)
        default_pool = args.pool
        if args.disk and not default_pool and any(pool is None for _, pool in args.disk):
            raise ApiError(0, "--disk SIZE without @POOL needs --pool with --location or --pxe")
    else:
        kind, volume = ("iso", args.iso) if args.iso else ("cloud_image", args.cloud_image)
        default_pool = args.pool or volume.partition("/")[0]
        source = {"kind": kind, "volume": volume}
    if args.kernel_args and not args.location:
        raise ApiError(0, "--kernel-args go with --location (for direct kernel boot use --cmdline)")
    ci = _cloud_init(args)
    if ci is not None:
        source["cloud_init"] = ci
    disks = []
    for gib, pool in args.disk or []:
        disk: dict[str, Any] = {"size_gib": gib, "pool": pool or default_pool}
        if args.disk_bus:
            disk["bus"] = args.disk_bus
        disks.append(disk)
    nics = [{"network": n, "model": args.nic_model} for n in args.network or []]
    nics += [{"bridge": b, "model": args.nic_model} for b in args.bridge or []]
    body: dict[str, Any] = {"name": args.name, "vcpus": args.vcpus, "memory_mib": args.memory,
                            "firmware": args.firmware, "source": source, "disks": disks, "nics": nics,
                            "start": not args.no_start}
    if args.host:
        body["host"] = args.host
    if args.description:
        body["description"] = args.description
    if args.kernel:
        body["direct_boot"] = {"kernel": args.kernel, "initrd": args.initrd, "cmdline": args.cmdline or ""}
    elif args.initrd or args.cmdline:
        raise ApiError(0, "--initrd and --cmdline need --kernel POOL/VOLUME")
    return body


def follow(client: Client, job: dict, quiet: bool, interval: float = 0.5, timeout: float = 3600) -> dict:
    """Poll the job until it ends, printing each change of step, progress or message."""
    last = None
    deadline = time.monotonic() + timeout
    while True:
        seen = (job.get("step"), round(job.get("progress") or 0), job.get("message"))
        if seen != last and not quiet:
            step = f"{job['step']}: " if job.get("step") else ""
            print(f"[{job.get('progress') or 0:5.1f}%] {step}{job.get('message') or job['state']}", flush=True)
            last = seen
        if job["state"] in ("succeeded", "failed"):
            return job
        if time.monotonic() > deadline:
            raise ApiError(0, f"job {job['id']} did not finish within {timeout:g} s (still {job['state']})")
        time.sleep(interval)
        job = client.get(f"/jobs/{job['id']}")


def vm_create(args, client: Client) -> int:
    body = build_body(args)
    job = client.post("/vms", body)
    if not args.wait:
        if args.json:
            json.dump(job, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(f"job {job['id']} creates VM {args.name!r} on host {job['host']} (follow it with --wait, or "
                  f"GET /api/v1/jobs/{job['id']})")
        return 0
    job = follow(client, job, quiet=args.json)
    if args.json:
        json.dump(job, sys.stdout, indent=2)
        sys.stdout.write("\n")
    if job["state"] == "succeeded":
        if not args.json:
            result = job.get("result") or {}
            print(f"VM {result.get('name', args.name)} created ({result.get('id', '?')})")
        for warning in (job.get("result") or {}).get("warnings", []):
            print(f"flint: warning: {warning}", file=sys.stderr)
        return 0
    undone = "rolled back" if job.get("rolled_back") else "NOT fully rolled back: " + (job.get("message") or "")
    print(f"flint: creating VM {args.name!r} failed: {job.get('error')} ({undone})", file=sys.stderr)
    return 1


def add_parser(vm_sub, verb) -> None:
    """Register `flint vm create` into the `vm` subcommands (``verb`` adds --json and the client)."""
    p = verb(vm_sub, "create", vm_create, "create a VM from an ISO, a cloud image, a network install or PXE")
    p.add_argument("--name", required=True)
    p.add_argument("--host", help="the host to create it on (default: the gateway's own)")
    p.add_argument("--vcpus", type=int, default=1)
    p.add_argument("--memory", type=parse_memory, default=1024, help="MiB, or with a unit: 512M, 2G (default 1024)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--iso", metavar="POOL/VOLUME", help="install from this ISO volume (attached as CD-ROM)")
    src.add_argument("--cloud-image", metavar="POOL/VOLUME", help="boot a qcow2 overlay on this image volume")
    src.add_argument("--location", metavar="URL", help="network install from this install tree (.treeinfo); "
                     "--kernel/--initrd URLs override the tree's files")
    src.add_argument("--pxe", action="store_true", help="boot from the network: the NIC of the first --network "
                     "(or --bridge) first in the boot order")
    p.add_argument("--kernel-args", "--extra-args", metavar="ARGS", help="with --location: the installer's kernel "
                   "arguments, e.g. 'inst.ks=http://host/ks.cfg console=ttyS0'")
    p.add_argument("--disk", type=parse_disk, action="append", metavar="SIZE_GIB[@POOL]",
                   help="a disk (repeatable); with --cloud-image the first one is the overlay")
    p.add_argument("--pool", help="pool for disks given without @POOL (default: the source volume's pool)")
    p.add_argument("--disk-bus", choices=["virtio", "scsi", "sata", "ide"], help="for old guests: sata or ide")
    nets = p.add_argument_group("network (each option adds a NIC)")
    nets.add_argument("--network", action="append", metavar="NAME", help="a libvirt network")
    nets.add_argument("--bridge", action="append", metavar="NAME", help="a host bridge")
    nets.add_argument("--nic-model", default="virtio", choices=["virtio", "e1000", "e1000e", "rtl8139"])
    p.add_argument("--firmware", choices=["bios", "uefi"], default="bios")
    p.add_argument("--description")
    p.add_argument("--no-start", action="store_true", help="define it but do not start it")
    p.add_argument("--wait", action="store_true", help="follow the job, printing its progress; exit 1 if it fails")
    ci = p.add_argument_group("cloud-init (any of these adds a NoCloud seed)")
    ci.add_argument("--hostname")
    ci.add_argument("--user", help="a user to create, with sudo")
    ci.add_argument("--password-stdin", action="store_true", help="read the user's password from standard input")
    ci.add_argument("--ssh-key", action="append", metavar="FILE", help="authorized keys file (repeatable)")
    ci.add_argument("--packages", action="append", metavar="PKG[,PKG]", help="packages to install")
    ci.add_argument("--runcmd", action="append", metavar="COMMAND", help="a command to run on first boot")
    ci.add_argument("--user-data", metavar="FILE", help="#cloud-config YAML merged over the options above")
    ci.add_argument("--static", metavar="ADDRESS/PREFIX", help="static address on the first NIC (default DHCP)")
    ci.add_argument("--gateway")
    ci.add_argument("--dns", action="append", metavar="ADDRESS[,ADDRESS]")
    boot = p.add_argument_group("direct kernel boot (with --location: the installer's URLs)")
    boot.add_argument("--kernel", metavar="POOL/VOLUME|URL")
    boot.add_argument("--initrd", metavar="POOL/VOLUME|URL")
    boot.add_argument("--cmdline")
