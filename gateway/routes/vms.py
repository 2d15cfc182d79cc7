"""VM changes that run as jobs on the VM's host: create, delete (and, later, clone)."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, Response, delete, post

from flint.contracts.jobs import PublicJob
from flint.contracts.vms import VMCreateRequest
from gateway.deps import gw
from gateway.routes.inventory import _known_host, _vm
from gateway.routes.jobs import submit_job


class VMWritesController(Controller):
    path = "/vms"
    tags = ["vms"]

    @post("/", status_code=202)
    async def create_vm(self, request: Request, data: VMCreateRequest) -> Response[PublicJob]:
        """Checked by the host's provisioner before anything is made (4xx naming the field), then a job."""
        host = data.host or gw(request).settings.host
        _known_host(request, host)
        return await submit_job(request, host, "vm.create", msgspec.to_builtins(data))

    @delete("/{vm_id:str}", status_code=202)
    async def delete_vm(self, request: Request, vm_id: str, delete_disks: bool = False) -> Response[PublicJob]:
        vm = _vm(request, vm_id)
        return await submit_job(request, vm.host, "vm.delete", {"id": vm_id, "delete_disks": delete_disks})
