"""Which message travels on which subject: the table the JSON Schemas and the AsyncAPI document come from."""

from __future__ import annotations

from flint.contracts.audit import AuditRecord
from flint.contracts.common import Empty, ErrorReply
from flint.contracts.events import Event
from flint.contracts.health import HealthReply
from flint.contracts.inventory import (
    VM,
    HostFacts,
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

# event kind -> the type of Event.data ("updated" carries the document; "deleted" may carry null)
EVENT_DATA = {
    "domain": VM,
    "host": HostFacts,
    "pool": Pool,
    "network": Network,
    "job": PublicJob,
}
LIVE_DATA = {"metrics": MetricSample}

# (service, verb) -> (request, reply). Every service also answers "health" with HealthReply.
REQUESTS = {
    ("inventory", "metrics"): (MetricsRequest, VMMetrics),
    ("inventory", "resync"): (Empty, ResyncReply),
    ("provisioner", "vm.action"): (VMActionRequest, VMActionReply),
    ("provisioner", "jobs.submit"): (JobSubmit, PublicJob),
    ("provisioner", "jobs.get"): (JobGet, PublicJob),
}
HEALTH = (Empty, HealthReply)
OTHER = {"JobRef": JobRef, "AuditRecord": AuditRecord, "ErrorReply": ErrorReply, "Event": Event}
