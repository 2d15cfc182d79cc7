"""`flint pool ...` and `flint volume ...`: storage through the API (FLINT_URL, FLINT_TOKEN), --json for scripts."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flint.cli.client import ApiError, Client
from flint.cli.format import size, table

POOL_TYPES = ("dir", "fs", "netfs", "logical", "disk", "iscsi", "iscsi-direct", "scsi", "mpath", "rbd", "gluster",
              "zfs", "vstorage")
UPLOAD_CHUNK = 1024 * 1024


def _out(args: argparse.Namespace, data: Any, render) -> int:
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render(data))
    return 0


def _pools(args) -> str:
    return f"/hosts/{quote(args.host, safe='')}/pools"


def _pool(args, name: str | None = None) -> str:
    return f"{_pools(args)}/{quote(name or args.pool, safe='')}"


def _vol(args) -> str:
    return f"{_pool(args)}/volumes/{quote(args.name, safe='')}"


def _wait_job(client: Client, job: dict, quiet: bool) -> dict:
    """Follow a job until it ends, showing its progress on stderr (not for --json)."""
    last = ""
    while job["state"] not in ("succeeded", "failed"):
        time.sleep(0.5)
        job = client.get(f"/jobs/{job['id']}")
        line = f"{job['progress']:5.1f}%  {job['step']}  {job['message']}"
        if not quiet and line != last and sys.stderr.isatty():
            print(f"\r{line[:100]:<100}", end="", file=sys.stderr, flush=True)
            last = line
    if not quiet and last and sys.stderr.isatty():
        print(file=sys.stderr)
    if job["state"] == "failed":
        raise ApiError(0, f"job {job['id']} failed: {job['error']}" + (" (rolled back)" if job["rolled_back"] else ""))
    return job


# ---- pools -------------------------------------------------------------------------------------------

def pool_list(args, client: Client) -> int:
    pools = client.get(_pools(args))

    def render(ps):
        rows = [(p["name"], p["type"], p["state"], "yes" if p["autostart"] else "no", size(p["capacity"]),
                 size(p["allocation"]), size(p["available"]), p["volumes"], p.get("target") or "-") for p in ps]
        return table(["name", "type", "state", "autostart", "capacity", "allocation", "available", "volumes",
                      "target"], rows)

    return _out(args, pools, render)


def _render_pool(p: dict) -> str:
    src = {k: v for k, v in p["source"].items() if v not in (None, [], "")}
    lines = [
        f"{p['name']}  ({p['type']}, {p['state']})",
        f"  host       {p['host']}",
        f"  target     {p.get('target') or '-'}",
        f"  autostart  {'yes' if p['autostart'] else 'no'}",
        f"  capacity   {size(p['capacity'])}, {size(p['allocation'])} allocated, {size(p['available'])} free",
        f"  volumes    {p['volumes']}",
    ]
    lines += [f"  source.{k:<10} {', '.join(v) if isinstance(v, list) else v}" for k, v in src.items()]
    return "\n".join(lines)


def pool_show(args, client: Client) -> int:
    return _out(args, client.get(_pool(args)), _render_pool)


def pool_create(args, client: Client) -> int:
    source = {
        "host": args.source_host, "port": args.source_port, "dir": args.source_dir, "name": args.source_name,
        "devices": args.source_device or [], "format": args.source_format, "adapter": args.adapter,
        "initiator": args.initiator, "auth_username": args.auth_username, "auth_secret_uuid": args.auth_secret_uuid,
    }
    body = {
        "name": args.pool, "type": args.type, "target": args.target,
        "source": {k: v for k, v in source.items() if v not in (None, [])},
        "build": args.build, "overwrite": args.overwrite, "start": not args.no_start,
        "autostart": not args.no_autostart,
    }
    return _out(args, client.post(_pools(args), {k: v for k, v in body.items() if v is not None}), _render_pool)


def pool_delete(args, client: Client) -> int:
    params = {"delete_volumes": str(args.delete_volumes).lower(), "force": str(args.force).lower()}
    done = client.delete(_pool(args), params=params)

    def render(d):
        extra = f", {len(d['deleted_volumes'])} volume(s) deleted" if d["deleted_volumes"] else ""
        return f"pool {d['deleted']} deleted{' with its storage' if d['storage_deleted'] else ''}{extra}"

    return _out(args, done, render)


def pool_action(args, client: Client) -> int:
    action = args.action
    if action == "autostart" and args.off:
        action = "noautostart"
    pool = client.post(f"{_pool(args)}/actions", {"action": action})
    return _out(args, pool, lambda p: f"{p['name']}: {action} done, now {p['state']}"
                                      f"{', autostart' if p['autostart'] else ''}")


# ---- volumes -----------------------------------------------------------------------------------------

def volume_list(args, client: Client) -> int:
    vols = client.get(f"{_pool(args)}/volumes")

    def render(vs):
        rows = [(v["name"], v["format"] or "-", v["type"], size(v["capacity"]), size(v["allocation"]), v["path"])
                for v in vs]
        return table(["name", "format", "type", "capacity", "allocation", "path"], rows)

    return _out(args, vols, render)


def _render_vol(v: dict) -> str:
    return (f"{v['pool']}/{v['name']}: {v['format'] or '-'} {v['type']}, {size(v['capacity'])} "
            f"({size(v['allocation'])} allocated) at {v['path']}")


def volume_create(args, client: Client) -> int:
    body = {"name": args.name, "capacity": args.capacity, "format": args.format, "preallocate": args.preallocate}
    return _out(args, client.post(f"{_pool(args)}/volumes", body), _render_vol)


def volume_delete(args, client: Client) -> int:
    return _out(args, client.delete(_vol(args)), lambda d: f"volume {d['deleted']} deleted")


def volume_resize(args, client: Client) -> int:
    body = {"capacity": args.capacity, "allow_shrink": args.allow_shrink}
    return _out(args, client.post(f"{_vol(args)}/resize", body), _render_vol)


def _file_chunks(path: Path, total: int, quiet: bool) -> Iterator[bytes]:
    sent, started, shown = 0, time.monotonic(), 0.0
    with path.open("rb") as f:
        while chunk := f.read(UPLOAD_CHUNK):
            sent += len(chunk)
            now = time.monotonic()
            if not quiet and sys.stderr.isatty() and (now - shown > 0.3 or sent == total):
                shown = now
                rate = sent / max(now - started, 1e-6) / 1e6
                print(f"\rupload {100 * sent / total:5.1f}%  {size(sent)} of {size(total)}  {rate:.1f} MB/s",
                      end="", file=sys.stderr, flush=True)
            yield chunk
    if not quiet and sys.stderr.isatty():
        print(file=sys.stderr)


def volume_upload(args, client: Client) -> int:
    path = Path(args.file)
    try:
        total = path.stat().st_size
    except OSError as exc:
        raise ApiError(0, f"cannot read {args.file}: {exc.strerror}") from None
    name = args.name or path.name
    args.name = name
    job = client.call("PUT", f"{_vol(args)}/content", content=_file_chunks(path, total, args.json),
                      headers={"Content-Length": str(total), "Content-Type": "application/octet-stream"},
                      timeout=None)
    if not args.no_wait:
        job = _wait_job(client, job, args.json)
    return _out(args, job, lambda j: _render_vol(j["result"]["volume"]) if j["state"] == "succeeded"
                else f"job {j['id']} {j['state']}")


def volume_import(args, client: Client) -> int:
    body = {"url": args.url, "name": args.name, "sha256": args.sha256, "format": args.format}
    job = client.post(f"{_pool(args)}/volumes/import", {k: v for k, v in body.items() if v is not None})
    if not args.no_wait:
        job = _wait_job(client, job, args.json)
    return _out(args, job, lambda j: f"{_render_vol(j['result']['volume'])}, sha256 {j['result']['sha256']}"
                if j["state"] == "succeeded" else f"job {j['id']} {j['state']}")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    default_host = os.environ.get("FLINT_HOST", "local")

    def verb(parent, name, func, help_, pool_arg: bool = True):
        p = parent.add_parser(name, help=help_)
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.add_argument("--host", default=default_host, help=f"the host (default {default_host})")
        if pool_arg:
            p.add_argument("pool", help="pool name")
        p.set_defaults(func=func, needs_client=True)
        return p

    pool = sub.add_parser("pool", help="storage pools").add_subparsers(dest="verb", required=True)
    verb(pool, "list", pool_list, "list a host's pools", pool_arg=False)
    verb(pool, "show", pool_show, "show one pool with its source")
    p = verb(pool, "create", pool_create, "define, build, start and autostart a pool")
    p.add_argument("--type", required=True, choices=POOL_TYPES)
    p.add_argument("--target", help="directory (dir, fs, netfs) or device directory")
    p.add_argument("--source-host", help="netfs, iscsi, rbd, gluster: the server")
    p.add_argument("--source-port", type=int)
    p.add_argument("--source-dir", help="netfs: the exported directory (or share)")
    p.add_argument("--source-name", help="logical: volume group; rbd: ceph pool; gluster: volume; zfs: zpool")
    p.add_argument("--source-device", action="append", help="fs, disk: the device; logical: a PV (repeat); iscsi: IQN")
    p.add_argument("--source-format", help="fs: ext4, xfs...; netfs: nfs, cifs; disk: gpt, dos...")
    p.add_argument("--adapter", help="scsi: the host adapter, e.g. host0")
    p.add_argument("--initiator", help="iscsi: the initiator IQN")
    p.add_argument("--auth-username")
    p.add_argument("--auth-secret-uuid", help="a libvirt secret holding the key")
    build = p.add_mutually_exclusive_group()
    build.add_argument("--build", dest="build", action="store_true", default=None, help="build the storage")
    build.add_argument("--no-build", dest="build", action="store_false", help="do not build")
    p.add_argument("--overwrite", action="store_true", help="fs: mkfs; logical/disk: wipe what is on the devices")
    p.add_argument("--no-start", action="store_true")
    p.add_argument("--no-autostart", action="store_true")
    p = verb(pool, "delete", pool_delete, "stop and undefine a pool (refused while a VM uses it)")
    p.add_argument("--delete-volumes", action="store_true", help="also delete its storage (directory, VG...)")
    p.add_argument("--force", action="store_true", help="with --delete-volumes: delete the volumes it holds")
    for action in ("start", "stop", "refresh", "build"):
        verb(pool, action, pool_action, f"{action} a pool").set_defaults(action=action)
    p = verb(pool, "autostart", pool_action, "start the pool with libvirt (--off: do not)")
    p.add_argument("--off", action="store_true")
    p.set_defaults(action="autostart")

    vol = sub.add_parser("volume", help="volumes in a pool").add_subparsers(dest="verb", required=True)
    verb(vol, "list", volume_list, "list a pool's volumes")
    p = verb(vol, "create", volume_create, "create an empty volume")
    p.add_argument("name")
    p.add_argument("--capacity", required=True, help="e.g. 10G, 512M, 1.5T, or bytes")
    p.add_argument("--format", default="qcow2", choices=["qcow2", "raw"])
    p.add_argument("--preallocate", action="store_true", help="raw: allocate all of it now")
    p = verb(vol, "delete", volume_delete, "delete a volume (refused while a VM uses it)")
    p.add_argument("name")
    p = verb(vol, "resize", volume_resize, "grow a volume (or shrink with --allow-shrink)")
    p.add_argument("name")
    p.add_argument("--capacity", required=True)
    p.add_argument("--allow-shrink", action="store_true")
    p = verb(vol, "upload", volume_upload, "upload a file as a new volume")
    p.add_argument("file")
    p.add_argument("--name", help="volume name (default: the file name)")
    p.add_argument("--no-wait", action="store_true", help="print the job and return")
    p = verb(vol, "import", volume_import, "download a URL into a new volume (pool flint-images: the image library)")
    p.add_argument("url")
    p.add_argument("--name", help="volume name (default: the file name in the URL)")
    p.add_argument("--sha256", help="the file's expected SHA-256")
    p.add_argument("--format", choices=["qcow2", "raw", "iso"], help="fail unless the file is of this format")
    p.add_argument("--no-wait", action="store_true", help="print the job and return")
