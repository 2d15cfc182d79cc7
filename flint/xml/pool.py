"""``<pool>``: a libvirt storage pool (dir, fs, netfs, logical, disk, iscsi, ...)."""

from __future__ import annotations

from .base import Prop, PropList, Size, XmlModel
from .names import validator


class StoragePool(XmlModel):
    """Sizes are bytes whatever unit the XML used; ``source_*`` fields depend on ``type``."""

    TAG = "pool"
    type = Prop("./@type", doc="dir, fs, netfs, logical, disk, iscsi, iscsi-direct, scsi, rbd, zfs, ...")
    name = Prop("./name", validate=validator("pool"))
    uuid = Prop("./uuid")
    capacity = Size("./capacity")
    allocation = Size("./allocation")
    available = Size("./available")
    source_hosts = PropList("./source/host/@name", doc="netfs, iscsi, rbd, gluster servers")
    source_host_port = Prop("./source/host/@port", int, doc="port of the first host")
    source_devices = PropList("./source/device/@path", doc="fs, logical (PVs), disk, iscsi (IQN)")
    source_dir = Prop("./source/dir/@path", doc="netfs export path, gluster directory")
    source_name = Prop("./source/name", doc="logical: volume group name; rbd: pool")
    source_format = Prop("./source/format/@type", doc="fs: ext4, auto; netfs: nfs; logical: lvm2; disk: gpt")
    initiator_iqn = Prop("./source/initiator/iqn/@name")
    source_adapter_type = Prop("./source/adapter/@type", doc="scsi: scsi_host or fc_host")
    source_adapter_name = Prop("./source/adapter/@name", doc="scsi: the SCSI host, e.g. host0")
    source_auth_type = Prop("./source/auth/@type", doc="rbd: ceph; iscsi: chap")
    source_auth_username = Prop("./source/auth/@username")
    source_auth_secret_uuid = Prop("./source/auth/secret/@uuid", doc="a libvirt secret holds the key")
    target_path = Prop("./target/path")
    target_mode = Prop("./target/permissions/mode", doc="octal string, e.g. 0755")
    target_owner = Prop("./target/permissions/owner", int)
    target_group = Prop("./target/permissions/group", int)
    target_label = Prop("./target/permissions/label")
