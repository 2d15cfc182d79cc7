"""Every NATS subject, stream, consumer and KV bucket name. Nowhere else."""

from __future__ import annotations

SERVICES = ("inventory", "provisioner", "console", "firewall")

# Streams
EVENTS_STREAM = "FLINT_EVENTS"
EVENTS_ALL = "flint.evt.>"
EVENTS_MAX_AGE_S = 24 * 3600
JOBS_STREAM = "FLINT_JOBS"
JOBS_ALL = "flint.job.>"
AUDIT_STREAM = "FLINT_AUDIT"
AUDIT_ALL = "flint.audit.>"

# KV buckets
KV_INVENTORY = "flint-inventory"
KV_HOSTS = "flint-hosts"
KV_JOBS = "flint-jobs"
KV_CONSOLE = "flint-console"
KV_AUTH = "flint-auth"
KV_SESSIONS = "flint-sessions"
KV_FIREWALL = "flint-firewall"

# Object Store buckets
OBJ_UPLOADS = "flint-uploads"  # volume uploads between the gateway and a host's provisioner (TTL below)
OBJ_UPLOADS_TTL_S = 24 * 3600

HOST_HEARTBEAT_TTL_S = 15
SESSION_ABSOLUTE_TTL_S = 12 * 3600


def request(host: str, service: str, verb: str) -> str:
    """A request handled by one service of one host: flint.<host>.<service>.<verb>."""
    return f"flint.{host}.{service}.{verb}"


def health(host: str, service: str) -> str:
    return request(host, service, "health")


def event(host: str, kind: str, ident: str) -> str:
    """An event: flint.evt.<host>.<kind>.<id>. Ids with dots would split the subject, so they are escaped."""
    return f"flint.evt.{host}.{kind}.{_token(ident)}"


def events_of_host(host: str) -> str:
    return f"flint.evt.{host}.>"


def events_of_kind(host: str, kind: str) -> str:
    """Every event of one kind on one host (a wildcard subject to subscribe to)."""
    return f"flint.evt.{host}.{kind}.*"


def job(host: str) -> str:
    return f"flint.job.{host}"


def jobs_consumer(host: str) -> str:
    return f"provisioner-{host}"


def audit(host: str) -> str:
    return f"flint.audit.{host}"


# KV keys (dots separate levels; KV keys allow [-/_=.a-zA-Z0-9])
def kv_vm(host: str, uuid: str) -> str:
    return f"{host}.vm.{uuid}"


def kv_pool(host: str, name: str) -> str:
    return f"{host}.pool.{_token(name)}"


def kv_network(host: str, name: str) -> str:
    return f"{host}.net.{_token(name)}"


def kv_host(host: str) -> str:
    return f"{host}.host"


def kv_host_prefix(host: str) -> str:
    return f"{host}.>"


# KV flint-hosts: heartbeats under the bare host name; agentless registrations (the central supervisor
# runs their services) under agentless.<name>. Host names have no dots, so the two never collide.
KV_AGENTLESS_PREFIX = "agentless."


def kv_agentless(host: str) -> str:
    return f"{KV_AGENTLESS_PREFIX}{host}"


# KV flint-firewall: rulesets (global) and the index of which VM uses which ruleset.
KV_FW_RULESET_PREFIX = "ruleset."
KV_FW_USAGE_PREFIX = "usage."


def kv_fw_ruleset(name: str) -> str:
    return f"{KV_FW_RULESET_PREFIX}{name}"


def kv_fw_usage(host: str, vm_id: str) -> str:
    return f"{KV_FW_USAGE_PREFIX}{host}.{vm_id}"


def _token(value: str) -> str:
    # Names are validated before they get here; this only keeps subject tokens whole.
    return value.replace(".", "_").replace(" ", "_").replace("*", "_").replace(">", "_") or "_"


def live(host: str, kind: str, ident: str) -> str:
    """Live-only samples (metrics): plain subjects outside FLINT_EVENTS, flint.live.<host>.<kind>.<id>."""
    return f"flint.live.{host}.{kind}.{_token(ident)}"


LIVE_ALL = "flint.live.>"


# Consoles: tickets in KV flint-console, session bytes on a channel per session (see flint/channel.py).
def kv_console_ticket(digest: str) -> str:
    """A ticket's record, keyed by the sha256 hex of the ticket (the ticket itself is never stored)."""
    return f"t.{digest}"


def console_channel(host: str, channel: str, direction: str) -> str:
    """flint.<host>.console.chan.<id>.<up|down>: up = gateway to the host, down = host to the gateway."""
    return f"flint.{host}.console.chan.{_token(channel)}.{direction}"


# Volume uploads: the body streams from the gateway to the provisioner's job on a channel (flint/channel.py).
def upload_channel(host: str, channel: str) -> str:
    """flint.<host>.provisioner.upload.<id>: gateway to the host. The host answers (ready, acks, the result)
    on an inbox the gateway names in the job, which an agent's NATS user may publish to."""
    return f"flint.{host}.provisioner.upload.{_token(channel)}"
