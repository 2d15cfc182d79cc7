"""Which message travels on which subject: the table the JSON Schemas and the AsyncAPI document come from."""

from __future__ import annotations

from flint.contracts.audit import AuditRecord
from flint.contracts.common import Empty, ErrorReply
from flint.contracts.console import AttachReply, AttachRequest, TicketRecord, TicketReply, TicketRequest
from flint.contracts.events import Event
from flint.contracts.firewall import (
    FirewallChange,
    NWFilterList,
    RulesetDoc,
    Usage,
    VMFirewall,
    VMFirewallGet,
    VMFirewallSet,
)
from flint.contracts.health import HealthReply
from flint.contracts.hosts import HostRegistration
from flint.contracts.inventory import (
    VM,
    HostFacts,
    InventoryRefresh,
    MetricSample,
    MetricsRequest,
    Network,
    Pool,
    ResyncReply,
    VMActionReply,
    VMActionRequest,
    VMMetrics,
)
from flint.contracts.jobs import JobGet, JobRef, JobSubmit, PublicJob
from flint.contracts.networks import (
    InterfaceList,
    InterfacesList,
    NetworkAction,
    NetworkCreate,
    NetworkDelete,
    NetworkDeleted,
    NetworkDetail,
    NetworkRef,
    NetworkUpdate,
)
from flint.contracts.storage import (
    Deleted,
    PoolAction,
    PoolCreate,
    PoolDelete,
    PoolDetail,
    PoolRef,
    UploadCheck,
    UploadCheckReply,
    VolumeCreate,
    VolumeInfo,
    VolumeList,
    VolumeRef,
    VolumeResize,
    VolumesList,
)
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
    VMUpdate,
    VMUpdateReply,
)

# event kind -> the type of Event.data ("updated" carries the document; "deleted" may carry null)
EVENT_DATA = {
    "domain": VM,
    "host": HostFacts,
    "pool": Pool,
    "network": Network,
    "job": PublicJob,
    "firewall": FirewallChange,
}
LIVE_DATA = {"metrics": MetricSample}

# (service, verb) -> (request, reply). Every service also answers "health" with HealthReply.
REQUESTS = {
    ("inventory", "metrics"): (MetricsRequest, VMMetrics),
    ("inventory", "resync"): (Empty, ResyncReply),
    ("provisioner", "vm.action"): (VMActionRequest, VMActionReply),
    ("provisioner", "jobs.submit"): (JobSubmit, PublicJob),
    ("provisioner", "jobs.get"): (JobGet, PublicJob),
    ("provisioner", "vm.update"): (VMUpdate, VMUpdateReply),
    ("provisioner", "snapshot.list"): (SnapshotsList, SnapshotList),
    ("provisioner", "snapshot.create"): (SnapshotCreate, SnapshotInfo),
    ("provisioner", "snapshot.revert"): (SnapshotRef, SnapshotDone),
    ("provisioner", "snapshot.delete"): (SnapshotRef, SnapshotDone),
    ("provisioner", "disk.attach"): (DiskAttach, DeviceChange),
    ("provisioner", "disk.detach"): (DiskDetach, DeviceChange),
    ("provisioner", "nic.attach"): (NicAttach, DeviceChange),
    ("provisioner", "nic.detach"): (NicDetach, DeviceChange),
    ("firewall", "vm.get"): (VMFirewallGet, VMFirewall),
    ("firewall", "vm.set"): (VMFirewallSet, VMFirewall),
    ("firewall", "nwfilters.list"): (Empty, NWFilterList),
    ("provisioner", "pool.get"): (PoolRef, PoolDetail),
    ("provisioner", "pool.create"): (PoolCreate, PoolDetail),
    ("provisioner", "pool.delete"): (PoolDelete, Deleted),
    ("provisioner", "pool.action"): (PoolAction, PoolDetail),
    ("provisioner", "images.ensure"): (Empty, PoolDetail),
    ("provisioner", "volumes.list"): (VolumesList, VolumeList),
    ("provisioner", "volume.create"): (VolumeCreate, VolumeInfo),
    ("provisioner", "volume.delete"): (VolumeRef, Deleted),
    ("provisioner", "volume.resize"): (VolumeResize, VolumeInfo),
    ("provisioner", "volume.upload.check"): (UploadCheck, UploadCheckReply),
    ("provisioner", "network.get"): (NetworkRef, NetworkDetail),
    ("provisioner", "network.create"): (NetworkCreate, NetworkDetail),
    ("provisioner", "network.update"): (NetworkUpdate, NetworkDetail),
    ("provisioner", "network.delete"): (NetworkDelete, NetworkDeleted),
    ("provisioner", "network.action"): (NetworkAction, NetworkDetail),
    ("provisioner", "interfaces.list"): (InterfacesList, InterfaceList),
    ("inventory", "refresh"): (InventoryRefresh, Empty),
    ("console", "ticket"): (TicketRequest, TicketReply),
    ("console", "attach"): (AttachRequest, AttachReply),
}
HEALTH = (Empty, HealthReply)
OTHER = {"JobRef": JobRef, "AuditRecord": AuditRecord, "ErrorReply": ErrorReply, "Event": Event,
         "RulesetDoc": RulesetDoc, "Usage": Usage,  # KV flint-firewall documents
         "TicketRecord": TicketRecord,  # KV flint-console (key t.<sha256 of the ticket>)
         "HostRegistration": HostRegistration}  # KV flint-hosts (key agentless.<name>)
