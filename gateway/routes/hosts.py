"""Adding and removing agentless hosts (admin). The supervisor (`flint up`, flint/agentless.py) watches the
registrations this writes and runs the host's four services.

POST checks everything before anything is made — name, URI, key, known_hosts, then one SSH login that
trusts only the given known_hosts — writes the key files, then the registration; a failure removes what
it made. DELETE removes the registration, waits for the supervisor to stop the services and forget the
host, and forgets it itself if no supervisor does."""

from __future__ import annotations

import asyncio
import time

import structlog
from litestar import Controller, Request, delete, post
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from flint import bus, subjects
from flint.agentless import forget_host
from flint.contracts.common import ServiceError
from flint.contracts.hosts import HostAdd, HostRegistration
from flint.sshhosts import (
    HostFiles,
    SshTarget,
    check_host,
    check_name,
    host_key_lines,
    load_private_key,
    parse_uri,
)
from gateway.deps import gw

log = structlog.get_logger()
REMOVE_WAIT_S = 20.0


def _user(request: Request) -> str:
    return getattr(request.scope.get("user"), "name", "") or ""


# One addition per name at a time: a second request for a name must not touch the first's files. Other
# names go on meanwhile (checking an unreachable host takes up to ~25 s).
_adding: dict[str, asyncio.Lock] = {}


async def _add(request: Request, data: HostAdd) -> HostRegistration:
    g = gw(request)
    name = check_name(data.name, g.settings.host)
    if name in g.view.registrations:
        raise ServiceError(409, f"name: host {name!r} is already registered", "name")
    if name in g.view.heartbeats or name in g.view.hosts:
        raise ServiceError(409, f"name: a host named {name!r} already reports here (an agent?)", "name")
    target = parse_uri(data.uri)
    kv = await g.nc.jetstream().key_value(subjects.KV_HOSTS)
    try:  # the KV record, not the view (which may not have seen a registration made a moment ago)
        await kv.get(subjects.kv_agentless(name))
        raise ServiceError(409, f"name: host {name!r} is already registered", "name")
    except KeyNotFoundError:
        pass
    files = HostFiles(g.settings.data_dir, name)
    if files.dir.exists():  # removed a moment ago: the supervisor is still stopping its services
        raise ServiceError(409, f"name: host {name!r} is still being removed; try again in a few seconds", "name")
    reg = HostRegistration(name=name, uri=data.uri, created_at=time.time(), created_by=_user(request))
    if isinstance(target, SshTarget):
        key = load_private_key(data.ssh_private_key or "")
        lines = host_key_lines(data.known_hosts or "", target)
        reg.uri = target.uri
        reg.key_fingerprint = key.get_fingerprint()
        reg.host_keys = sorted({_fingerprint(line) for line in lines})
        files.write(key.export_private_key("openssh").decode(), lines)
        try:
            await check_host(target, key, files.known_hosts)
        except BaseException:
            files.remove()
            raise
    else:
        reg.kind = "test"
        if data.ssh_private_key or data.known_hosts:
            raise ServiceError(422, "ssh_private_key: only a qemu+ssh host takes a key", "ssh_private_key")
    try:
        await kv.create(subjects.kv_agentless(name), bus.encode(reg))
    except KeyWrongLastSequenceError:
        files.remove()
        raise ServiceError(409, f"name: host {name!r} is already registered", "name") from None
    except BaseException:
        files.remove()
        raise
    log.info("agentless host registered", host=name, uri=reg.uri, by=reg.created_by)
    return reg



class HostsController(Controller):
    path = "/hosts"
    tags = ["hosts"]

    @post("", status_code=201)
    async def add_host(self, request: Request, data: HostAdd) -> HostRegistration:
        lock = _adding.setdefault(str(data.name), asyncio.Lock())
        try:
            async with lock:
                return await _add(request, data)
        finally:
            if not lock.locked() and _adding.get(str(data.name)) is lock:
                del _adding[str(data.name)]

    @delete("/{host:str}", status_code=204)
    async def remove_host(self, request: Request, host: str) -> None:
        g = gw(request)
        if host not in g.view.registrations:
            if host in g.view.host_names() or host == g.settings.host:
                raise ServiceError(409, f"host {host!r} was not added through the API (it is local or an agent): "
                                   "stop its agent to remove it")
            raise ServiceError(404, f"no host named {host!r}")
        kv = await g.nc.jetstream().key_value(subjects.KV_HOSTS)
        try:
            await kv.delete(subjects.kv_agentless(host))
        except KeyNotFoundError:
            pass
        # The supervisor stops the services and forgets the host; its heartbeat disappears when done.
        deadline = time.monotonic() + REMOVE_WAIT_S
        while time.monotonic() < deadline and (host in g.view.heartbeats or host in g.view.hosts):
            await asyncio.sleep(0.1)
        if host in g.view.heartbeats or host in g.view.hosts:
            log.warning("no supervisor forgot the removed host; forgetting it here", host=host)
            await forget_host(g.nc, host)
        # The key must not outlive the host, supervisor or not (removing twice is harmless).
        HostFiles(g.settings.data_dir, host).remove()
        g.view.forget_host(host)
        log.info("agentless host removed", host=host)


def _fingerprint(line: str) -> str:
    import asyncssh

    _, algorithm, blob = line.split()[:3]
    key = asyncssh.import_public_key(f"{algorithm} {blob}")
    return f"{algorithm} {key.get_fingerprint()}"
