"""Changing an existing VM: PATCH settings, snapshots, disks, NICs (requests to the VM's host), clone (a job)."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post

from flint import bus, subjects
from flint.contracts.jobs import PublicJob
from flint.contracts.vm_edit import (
    DeviceChange,
    DiskAttach,
    DiskDetach,
    NicAttach,
    NicDetach,
    SnapshotCreate,
    SnapshotDone,
    SnapshotInfo,
    SnapshotList,
    SnapshotRef,
    SnapshotsList,
    VMCloneRequest,
    VMUpdate,
    VMUpdateReply,
)
from gateway.deps import gw
from gateway.routes.inventory import _vm, require_up
from gateway.routes.jobs import submit_job

R = TypeVar("R")


async def _ask(request: Request, vm_id: str, verb: str, req: msgspec.Struct, reply: type[R]) -> R:
    vm = _vm(request, vm_id)
    require_up(request, vm.host)
    return await bus.request(gw(request).nc, subjects.request(vm.host, "provisioner", verb), req, reply, timeout=120)


class VMEditController(Controller):
    path = "/vms/{vm_id:str}"
    tags = ["vms"]

    @patch("/")
    async def update_vm(self, request: Request, vm_id: str, data: VMUpdate) -> VMUpdateReply:
        """Persistent; applied live where libvirt allows, else ``next_boot`` lists the fields."""
        return await _ask(request, vm_id, "vm.update", msgspec.structs.replace(data, id=vm_id), VMUpdateReply)

    @post("/clone", status_code=202)
    async def clone_vm(self, request: Request, vm_id: str, data: VMCloneRequest) -> Response[PublicJob]:
        vm = _vm(request, vm_id)
        return await submit_job(request, vm.host, "vm.clone", {"id": vm_id, "name": data.name, "linked": data.linked})

    @get("/snapshots")
    async def list_snapshots(self, request: Request, vm_id: str) -> SnapshotList:
        return await _ask(request, vm_id, "snapshot.list", SnapshotsList(id=vm_id), SnapshotList)

    @post("/snapshots", status_code=201)
    async def create_snapshot(self, request: Request, vm_id: str, data: SnapshotCreate) -> SnapshotInfo:
        return await _ask(request, vm_id, "snapshot.create", msgspec.structs.replace(data, id=vm_id), SnapshotInfo)

    @post("/snapshots/{name:str}/revert", status_code=200)
    async def revert_snapshot(self, request: Request, vm_id: str, name: str) -> SnapshotDone:
        return await _ask(request, vm_id, "snapshot.revert", SnapshotRef(id=vm_id, name=name), SnapshotDone)

    @delete("/snapshots/{name:str}", status_code=200)
    async def delete_snapshot(self, request: Request, vm_id: str, name: str) -> SnapshotDone:
        return await _ask(request, vm_id, "snapshot.delete", SnapshotRef(id=vm_id, name=name), SnapshotDone)

    @post("/disks", status_code=201)
    async def attach_disk(self, request: Request, vm_id: str, data: DiskAttach) -> DeviceChange:
        return await _ask(request, vm_id, "disk.attach", msgspec.structs.replace(data, id=vm_id), DeviceChange)

    @delete("/disks/{target:str}", status_code=200)
    async def detach_disk(self, request: Request, vm_id: str, target: str) -> DeviceChange:
        return await _ask(request, vm_id, "disk.detach", DiskDetach(id=vm_id, target=target), DeviceChange)

    @post("/nics", status_code=201)
    async def attach_nic(self, request: Request, vm_id: str, data: NicAttach) -> DeviceChange:
        return await _ask(request, vm_id, "nic.attach", msgspec.structs.replace(data, id=vm_id), DeviceChange)

    @delete("/nics/{mac:str}", status_code=200)
    async def detach_nic(self, request: Request, vm_id: str, mac: str) -> DeviceChange:
        return await _ask(request, vm_id, "nic.detach", NicDetach(id=vm_id, mac=mac), DeviceChange)
