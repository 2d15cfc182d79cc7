"""VM changes that run as jobs on the VM's host: delete (and, later, create and clone)."""

from __future__ import annotations

from litestar import Controller, Request, Response, delete

from flint.contracts.jobs import PublicJob
from gateway.routes.inventory import _vm
from gateway.routes.jobs import submit_job


class VMWritesController(Controller):
    path = "/vms"
    tags = ["vms"]

    @delete("/{vm_id:str}", status_code=202)
    async def delete_vm(self, request: Request, vm_id: str, delete_disks: bool = False) -> Response[PublicJob]:
        vm = _vm(request, vm_id)
        return await submit_job(request, vm.host, "vm.delete", {"id": vm_id, "delete_disks": delete_disks})
