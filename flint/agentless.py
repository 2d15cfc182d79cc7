"""Agentless hosts under `flint up`: the supervisor watches KV flint-hosts for `agentless.<name>`
registrations (written by the gateway's POST /api/v1/hosts) and runs the four services of each host here,
against its libvirt URI. A new registration starts them, a deleted one stops them and forgets the host
(its inventory documents, heartbeat, firewall usage index, key files and NATS user).

Each host's services connect with NATS credentials of their own (role `agent` for that host, see
flint/natsauth.py) when the supervisor runs the embedded nats-server; with an external NATS
(FLINT_NATS_URL) they use the supervisor's credentials."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import msgspec
import structlog
from nats.aio.client import Client as NATS
from nats.js.errors import KeyNotFoundError

from flint import bus, subjects
from flint.contracts.hosts import HostRegistration
from flint.kvlist import kv_items
from flint.sshhosts import HostFiles, SshTarget, parse_uri

log = structlog.get_logger()
NATS_USER_PREFIX = "agentless-"


def libvirt_uri_of(reg: HostRegistration, data_dir: Path) -> str:
    target = parse_uri(reg.uri) if reg.kind == "ssh" else reg.uri
    if isinstance(target, SshTarget):
        return HostFiles(data_dir, reg.name).libvirt_uri(target)
    return reg.uri


async def _keys(kv, pattern: str) -> list[str]:
    """Keys matching a subject pattern (`host.>`): flint/kvlist.py says why not nats-py's keys()."""
    return [item.key for item in await kv_items(kv._js, kv._name, pattern, with_values=False)]


async def forget_host(nc: NATS, host: str) -> int:
    """Remove what the KV buckets hold for a host that is gone for good, and tell every browser.
    Call only once its services are stopped (they would write it all back). Returns keys removed."""
    js = nc.jetstream()
    inventory = await js.key_value(subjects.KV_INVENTORY)
    hosts = await js.key_value(subjects.KV_HOSTS)
    firewall = await js.key_value(subjects.KV_FIREWALL)
    events = bus.EventPublisher(nc, host)
    removed = 0
    for key in await _keys(inventory, subjects.kv_host_prefix(host)):
        await inventory.purge(key)
        removed += 1
        _, kind, ident = (key.split(".", 2) + ["", ""])[:3]
        kind = {"vm": "domain", "pool": "pool", "net": "network"}.get(kind)
        if kind:
            await events.publish(kind, ident, "deleted")
    for key in await _keys(firewall, f"{subjects.KV_FW_USAGE_PREFIX}{host}.>"):
        await firewall.purge(key)
        removed += 1
    try:
        await hosts.get(host)
        await hosts.purge(host)
        removed += 1
    except KeyNotFoundError:
        pass
    await events.publish("host", host, "deleted")
    return removed


class AgentlessHosts:
    """Run, for every registration, the four services of that host as children of the supervisor."""

    def __init__(self, sup) -> None:
        self.sup = sup
        self.running: dict[str, tuple[list, list[asyncio.Task]]] = {}  # host -> (children, supervise tasks)
        self.regs: dict[str, HostRegistration] = {}
        self._dec = msgspec.json.Decoder(HostRegistration)
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Watch the registry until cancelled (then stop every agentless host's services)."""
        nc = await bus.connect(self.sup.settings.effective_nats_url, name="flint-supervisor-hosts",
                               creds=self.sup.settings.nats_creds)
        self.nc = nc
        try:
            while True:
                try:
                    await bus.ensure_streams(nc, self.sup.settings.stream_replicas)
                    kv = await nc.jetstream().key_value(subjects.KV_HOSTS)
                    await self._prune_nats_users(kv)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - NATS still starting: try again
                    log.warning("host registry not ready, retrying", error=repr(exc))
                    await asyncio.sleep(1)
            while True:
                try:
                    watcher = await kv.watch(f"{subjects.KV_AGENTLESS_PREFIX}*")
                    async for entry in watcher:
                        if entry is None:
                            continue
                        name = entry.key[len(subjects.KV_AGENTLESS_PREFIX):]
                        if entry.operation is None and entry.value:
                            await self.add(self._dec.decode(entry.value))
                        else:
                            await self.remove(name)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - rewatch after NATS trouble
                    log.warning("host registry watch failed, rewatching", error=repr(exc))
                    await asyncio.sleep(1)
        finally:
            for name in list(self.running):
                await self._stop(name)
            await nc.close()

    async def add(self, reg: HostRegistration) -> None:
        async with self._lock:
            old = self.regs.get(reg.name)
            if old is not None and old.uri == reg.uri and reg.name in self.running:
                return
            if reg.name in self.running:
                await self._stop(reg.name)
            self.regs[reg.name] = reg
            from flint.supervisor import service_children

            try:
                uri = libvirt_uri_of(reg, self.sup.settings.data_dir)
                env_extra = {**self._nats_credentials(reg.name), "FLINT_AGENTLESS": "1"}
                children = service_children(self.sup, reg.name, uri, **env_extra)
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the others (or the watch)
                log.error("agentless host not started", host=reg.name, error=str(exc))
                return
            tasks = [asyncio.create_task(self.sup.supervise(c)) for c in children]
            self.running[reg.name] = (children, tasks)
            log.info("agentless host started", host=reg.name, uri=reg.uri)

    async def remove(self, name: str) -> None:
        async with self._lock:
            if name not in self.regs and name not in self.running:
                return  # a delete marker seen on start: forgotten back then (or by the gateway)
            self.regs.pop(name, None)
            await self._stop(name)
            # files first: once the heartbeat is gone (forget_host) the name may be added again at once
            HostFiles(self.sup.settings.data_dir, name).remove()
            self._drop_nats_user(name)
            removed = await forget_host(self.nc, name)
            log.info("agentless host removed", host=name, kv_keys_removed=removed)

    async def _stop(self, name: str) -> None:
        children, tasks = self.running.pop(name, ([], []))
        for c in children:
            c.retired = True
        await asyncio.gather(*(c.stop() for c in children))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # NATS credentials of a host's services
    def _auth(self):
        if self.sup.nats is None:  # external NATS: users are not ours to make
            return None
        from flint.natsauth import NatsAuth

        return NatsAuth(self.sup.settings.data_dir)

    def _nats_credentials(self, host: str) -> dict[str, str]:
        auth = self._auth()
        if auth is None:
            return {}
        from flint.natsauth import load_credentials

        system = load_credentials(self.sup.settings.nats_creds)
        creds = auth.add_user("agent", host, system.url, system.ca, name=f"{NATS_USER_PREFIX}{host}")
        path = auth.dir / f"{NATS_USER_PREFIX}{host}.creds"
        auth.write_private(path, creds.dump())
        self._reload(auth)
        return {"FLINT_NATS_CREDS": str(path)}

    def _drop_nats_user(self, host: str) -> None:
        auth = self._auth()
        if auth is None:
            return
        auth.remove_user(f"{NATS_USER_PREFIX}{host}")
        (auth.dir / f"{NATS_USER_PREFIX}{host}.creds").unlink(missing_ok=True)
        self._reload(auth)

    async def _prune_nats_users(self, kv) -> None:
        """Users of hosts removed while the supervisor was down."""
        auth = self._auth()
        if auth is None:
            return
        registered = {k[len(subjects.KV_AGENTLESS_PREFIX):] for k in await _keys(kv, f"{subjects.KV_AGENTLESS_PREFIX}*")}
        for user in auth.users():
            host = user.user[len(NATS_USER_PREFIX):]
            if user.user.startswith(NATS_USER_PREFIX) and host not in registered:
                self._drop_nats_user(host)

    def _reload(self, auth) -> None:
        """Rewrite nats-server's configuration from the users file and have it reload (SIGHUP)."""
        import json

        conf = json.loads(auth.config_file.read_text())
        tls = conf.get("tls")
        auth.write_server_config(conf["host"], conf["port"], Path(conf["jetstream"]["store_dir"]),
                                 (Path(tls["cert_file"]), Path(tls["key_file"])) if tls else None)
        proc = self.sup.nats.proc if self.sup.nats else None
        if proc is not None and proc.returncode is None:
            os.kill(proc.pid, signal.SIGHUP)
