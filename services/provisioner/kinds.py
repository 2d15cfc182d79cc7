"""Every job kind the provisioner runs, in one table."""

from __future__ import annotations

from services.provisioner.jobs import JobKind
from services.provisioner.vm_delete import VM_DELETE


def job_kinds() -> dict[str, JobKind]:
    kinds = [VM_DELETE]
    return {k.name: k for k in kinds}
