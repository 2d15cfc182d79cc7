"""Device target names (vda, vdb, sda, hdc ...) for disks added to an existing VM."""

from __future__ import annotations

from services.provisioner.domain_builder import TARGET_PREFIX, _target_name


def next_target(bus: str, taken: list[str]) -> str:
    prefix = TARGET_PREFIX[bus]
    index = 0
    while _target_name(prefix, index) in taken:
        index += 1
    return _target_name(prefix, index)
