"""Every job kind the provisioner runs, in one table."""

from __future__ import annotations

from services.provisioner.jobs import JobKind
from services.provisioner.vm_clone import VM_CLONE
from services.provisioner.vm_create import VM_CREATE
from services.provisioner.vm_delete import VM_DELETE
from services.provisioner.volume_jobs import VOLUME_IMPORT
from services.provisioner.volume_upload import VOLUME_UPLOAD


def job_kinds() -> dict[str, JobKind]:
    kinds = [VM_CREATE, VM_DELETE, VM_CLONE, VOLUME_UPLOAD, VOLUME_IMPORT]
    return {k.name: k for k in kinds}
