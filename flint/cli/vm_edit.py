"""`flint vm set|clone`, `flint vm disk attach|detach`, `flint vm nic attach|detach`, `flint snapshot …`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flint.cli.client import Client
from flint.cli.format import table
from flint.cli.vm_create import follow, parse_memory


def _vm_id(client: Client, args) -> str:
    from flint.cli.verbs import _find_vm

    return _find_vm(client, args.vm, args.host)["id"]


def _print(args, data: Any, text: str) -> int:
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(text)
    return 0


def vm_set(args, client: Client) -> int:
    body: dict[str, Any] = {}
    if args.vcpus is not None:
        body["vcpus"] = args.vcpus
    if args.memory is not None:
        body["memory_mib"] = args.memory
    if args.autostart is not None:
        body["autostart"] = args.autostart == "on"
    if args.description is not None:
        body["description"] = args.description
    reply = client.call("PATCH", f"/vms/{_vm_id(client, args)}", json=body)
    return _print(args, reply, reply["message"])


def vm_clone(args, client: Client) -> int:
    job = client.post(f"/vms/{_vm_id(client, args)}/clone", {"name": args.name, "linked": args.linked})
    if not args.wait:
        return _print(args, job, f"job {job['id']} clones {args.vm!r} as {args.name!r} (follow it with --wait)")
    job = follow(client, job, quiet=args.json)
    if args.json:
        _print(args, job, "")
    if job["state"] == "succeeded":
        if not args.json:
            print(f"VM {args.name} cloned ({(job.get('result') or {}).get('id', '?')})")
        return 0
    print(f"flint: cloning {args.vm!r} failed: {job.get('error')}", file=sys.stderr)
    return 1


def disk_attach(args, client: Client) -> int:
    body: dict[str, Any] = {"bus": args.bus}
    if args.volume:
        body["volume"] = args.volume
    else:
        body.update(size_gib=args.size, pool=args.pool)
    reply = client.post(f"/vms/{_vm_id(client, args)}/disks", body)
    return _print(args, reply, f"{reply['volume']} {reply['message']}")


def disk_detach(args, client: Client) -> int:
    reply = client.delete(f"/vms/{_vm_id(client, args)}/disks/{args.target}")
    return _print(args, reply, f"{args.target} {reply['message']}")


def nic_attach(args, client: Client) -> int:
    body = {"model": args.model, **({"network": args.network} if args.network else {"bridge": args.bridge})}
    reply = client.post(f"/vms/{_vm_id(client, args)}/nics", body)
    return _print(args, reply, f"NIC {reply['device']} {reply['message']}")


def nic_detach(args, client: Client) -> int:
    reply = client.delete(f"/vms/{_vm_id(client, args)}/nics/{args.mac}")
    return _print(args, reply, f"NIC {args.mac} {reply['message']}")


def snapshot_list(args, client: Client) -> int:
    reply = client.get(f"/vms/{_vm_id(client, args)}/snapshots")
    rows = [(s["name"], s["state"], s["created_at"], "*" if s["current"] else "", s["description"])
            for s in reply["snapshots"]]
    return _print(args, reply, table(["name", "vm state", "created", "current", "description"], rows))


def snapshot_create(args, client: Client) -> int:
    reply = client.post(f"/vms/{_vm_id(client, args)}/snapshots",
                        {"name": args.name, **({"description": args.description} if args.description else {})})
    return _print(args, reply, f"snapshot {reply['name']} created (VM was {reply['state']})")


def snapshot_revert(args, client: Client) -> int:
    reply = client.post(f"/vms/{_vm_id(client, args)}/snapshots/{args.name}/revert")
    return _print(args, reply, f"reverted to {args.name}; the VM is {reply['state']}")


def snapshot_delete(args, client: Client) -> int:
    reply = client.delete(f"/vms/{_vm_id(client, args)}/snapshots/{args.name}")
    return _print(args, reply, f"snapshot {args.name} deleted")


def add_parsers(sub: argparse._SubParsersAction, vm_sub, verb) -> None:
    def with_vm(p):
        p.add_argument("vm", help="name or UUID")
        p.add_argument("--host")
        return p

    p = with_vm(verb(vm_sub, "set", vm_set, "change vCPUs, memory, autostart or description"))
    p.add_argument("--vcpus", type=int)
    p.add_argument("--memory", type=parse_memory, help="MiB, or with a unit: 512M, 2G")
    p.add_argument("--autostart", choices=["on", "off"])
    p.add_argument("--description")
    p = with_vm(verb(vm_sub, "clone", vm_clone, "copy a shut-off VM (full copy, or --linked overlays)"))
    p.add_argument("name", help="the new VM's name")
    p.add_argument("--linked", action="store_true", help="qcow2 overlays on the source's disks")
    p.add_argument("--wait", action="store_true", help="follow the job; exit 1 if it fails")

    disk = vm_sub.add_parser("disk", help="attach and detach disks").add_subparsers(dest="disk_verb", required=True)
    p = with_vm(verb(disk, "attach", disk_attach, "a new empty qcow2 disk, or an existing volume"))
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--size", type=float, metavar="GIB", help="a new disk of this size (with --pool)")
    what.add_argument("--volume", metavar="POOL/VOLUME", help="an existing volume")
    p.add_argument("--pool")
    p.add_argument("--bus", default="virtio", choices=["virtio", "scsi", "sata", "ide"])
    p = with_vm(verb(disk, "detach", disk_detach, "detach a disk (its volume is kept)"))
    p.add_argument("target", help="vdb, sdb, ...")

    nic = vm_sub.add_parser("nic", help="attach and detach NICs").add_subparsers(dest="nic_verb", required=True)
    p = with_vm(verb(nic, "attach", nic_attach, "a NIC on a libvirt network or a host bridge"))
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--network")
    where.add_argument("--bridge")
    p.add_argument("--model", default="virtio", choices=["virtio", "e1000", "e1000e", "rtl8139"])
    p = with_vm(verb(nic, "detach", nic_detach, "detach the NIC with this MAC"))
    p.add_argument("mac")

    snap = sub.add_parser("snapshot", help="internal qcow2 snapshots of a VM").add_subparsers(dest="verb",
                                                                                            required=True)
    with_vm(verb(snap, "list", snapshot_list, "list a VM's snapshots"))
    p = with_vm(verb(snap, "create", snapshot_create, "take a snapshot"))
    p.add_argument("name")
    p.add_argument("--description")
    p = with_vm(verb(snap, "revert", snapshot_revert, "return the VM to a snapshot"))
    p.add_argument("name")
    p = with_vm(verb(snap, "delete", snapshot_delete, "delete a snapshot"))
    p.add_argument("name")
