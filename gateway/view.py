"""The gateway's in-memory copy of KV flint-inventory and flint-hosts, kept current by KV watches.

Reads never wait on libvirt or NATS: they are dictionary lookups here."""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog
from nats.aio.client import Client as NATS

from flint import subjects
from flint.contracts.hosts import HostRegistration
from flint.contracts.inventory import VM, HostFacts, Network, Pool
from flint.contracts.jobs import Job, PublicJob, public_view

log = structlog.get_logger()
UNREACHABLE_AFTER_S = float(subjects.HOST_HEARTBEAT_TTL_S)


class InventoryView:
    def __init__(self) -> None:
        self.vms: dict[str, VM] = {}
        self.vm_json: dict[str, bytes] = {}
        # Every host's document of each VM: one libvirtd reached under two host names (an SSH alias of
        # this machine) reports the same UUID twice. The VM stays with the host that showed it first
        # while that host has it, so it does not flap, and one host forgetting it does not hide it.
        self._vm_docs: dict[str, dict[str, tuple[VM, bytes]]] = {}
        self.hosts: dict[str, HostFacts] = {}
        self.heartbeats: dict[str, HostFacts] = {}
        self.registrations: dict[str, HostRegistration] = {}  # agentless hosts (KV flint-hosts agentless.<name>)
        self.pools: dict[tuple[str, str], Pool] = {}
        self.networks: dict[tuple[str, str], Network] = {}
        self.jobs: dict[str, PublicJob] = {}
        self.ready = asyncio.Event()
        self._dec_vm = msgspec.json.Decoder(VM)
        self._dec_host = msgspec.json.Decoder(HostFacts)
        self._dec_reg = msgspec.json.Decoder(HostRegistration)
        self._dec_pool = msgspec.json.Decoder(Pool)
        self._dec_net = msgspec.json.Decoder(Network)
        self._dec_job = msgspec.json.Decoder(Job)
        self._tasks: list[asyncio.Task] = []

    async def start(self, nc: NATS) -> None:
        js = nc.jetstream()
        inventory = await js.key_value(subjects.KV_INVENTORY)
        hosts = await js.key_value(subjects.KV_HOSTS)
        jobs = await js.key_value(subjects.KV_JOBS)
        inv_ready, hosts_ready, jobs_ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._watch(inventory, self._apply_inventory, inv_ready)),
            asyncio.create_task(self._watch(hosts, self._apply_heartbeat, hosts_ready)),
            asyncio.create_task(self._watch(jobs, self._apply_job, jobs_ready)),
        ]
        await asyncio.wait_for(asyncio.gather(inv_ready.wait(), hosts_ready.wait(), jobs_ready.wait()), 30)
        self.ready.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _watch(self, kv, apply, ready: asyncio.Event) -> None:
        while True:
            try:
                watcher = await kv.watchall()
                async for entry in watcher:
                    if entry is None:  # the initial values are all delivered
                        ready.set()
                        continue
                    try:
                        apply(entry.key, entry.value if entry.operation is None else None)
                    except msgspec.DecodeError as exc:
                        log.warning("undecodable KV entry skipped", key=entry.key, error=str(exc))
                    if not ready.is_set() and entry.delta == 0:
                        ready.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - rewatch after NATS trouble
                log.warning("KV watch failed, rewatching", bucket=kv._name, error=repr(exc))
                await asyncio.sleep(1)

    def _apply_inventory(self, key: str, value: bytes | None) -> None:
        host, _, rest = key.partition(".")
        kind, _, ident = rest.partition(".")
        if kind == "vm":
            docs = self._vm_docs.setdefault(ident, {})
            if value:
                docs[host] = (self._dec_vm.decode(value), value)
            else:
                docs.pop(host, None)
            shown = self.vms.get(ident)
            if not docs:
                del self._vm_docs[ident]
                self.vms.pop(ident, None)
                self.vm_json.pop(ident, None)
            elif shown is None or shown.host == host or shown.host not in docs:
                vm, raw = docs.get(host) or next(iter(docs.values()))
                self.vms[ident], self.vm_json[ident] = vm, raw
        elif kind == "host" or rest == "host":
            if value:
                self.hosts[host] = self._dec_host.decode(value)
            else:
                self.hosts.pop(host, None)
        elif kind == "pool":
            if value:
                pool = self._dec_pool.decode(value)
                self.pools[(host, pool.name)] = pool
            else:
                self.pools = {k: v for k, v in self.pools.items() if not (k[0] == host and _token(k[1]) == ident)}
        elif kind == "net":
            if value:
                net = self._dec_net.decode(value)
                self.networks[(host, net.name)] = net
            else:
                self.networks = {
                    k: v for k, v in self.networks.items() if not (k[0] == host and _token(k[1]) == ident)
                }

    def _apply_job(self, key: str, value: bytes | None) -> None:
        job_id = key.partition(".")[2]
        if value:
            self.jobs[job_id] = public_view(self._dec_job.decode(value))
        else:
            self.jobs.pop(job_id, None)

    def _apply_heartbeat(self, key: str, value: bytes | None) -> None:
        if key.startswith(subjects.KV_AGENTLESS_PREFIX):
            name = key[len(subjects.KV_AGENTLESS_PREFIX):]
            if value:
                self.registrations[name] = self._dec_reg.decode(value)
            else:
                self.registrations.pop(name, None)
            return
        if value:
            self.heartbeats[key] = self._dec_host.decode(value)
        else:
            self.heartbeats.pop(key, None)

    def forget_host(self, host: str) -> None:
        """Drop what this view holds of a removed host at once, as its KV keys were purged: the answer
        after DELETE /hosts/{host} must not wait for the watch (seen lagging on a loaded machine)."""
        self.heartbeats.pop(host, None)
        self.hosts.pop(host, None)
        self.registrations.pop(host, None)
        for key in [k for k in self.pools if k[0] == host]:
            del self.pools[key]
        for key in [k for k in self.networks if k[0] == host]:
            del self.networks[key]
        for ident in [i for i, docs in self._vm_docs.items() if host in docs]:
            self._apply_inventory(f"{host}.vm.{ident}", None)

    # reads
    def host_names(self) -> list[str]:
        return sorted(set(self.hosts) | set(self.heartbeats) | set(self.registrations))

    def host(self, name: str) -> HostFacts | None:
        facts = self.heartbeats.get(name) or self.hosts.get(name)
        if facts is None:
            reg = self.registrations.get(name)
            if reg is None:
                return None
            # Registered, its services not reporting yet: "starting" (asking it answers 503 at once).
            return HostFacts(name=name, uri=reg.uri, state="starting", remote=reg.kind == "ssh", agentless=True)
        age = time.time() - facts.updated_at
        state = "up" if age <= UNREACHABLE_AFTER_S else "unreachable"
        return msgspec.structs.replace(facts, state=state)

    def is_unreachable(self, name: str) -> bool:
        """Seen before and silent since. A host not seen yet is not called unreachable: asking it
        answers at once (NATS says no responders) with the real reason."""
        facts = self.host(name)
        return facts is not None and facts.state == "unreachable"

    def vms_of(self, host: str | None = None) -> list[VM]:
        vms = self.vms.values() if host is None else (v for v in self.vms.values() if v.host == host)
        return sorted(vms, key=lambda v: (v.host, v.name))

    def pools_of(self, host: str | None = None) -> list[Pool]:
        return sorted((p for p in self.pools.values() if host is None or p.host == host), key=lambda p: (p.host, p.name))

    def networks_of(self, host: str | None = None) -> list[Network]:
        return sorted(
            (n for n in self.networks.values() if host is None or n.host == host), key=lambda n: (n.host, n.name)
        )


def _token(name: str) -> str:
    return subjects.kv_pool("", name).split(".", 2)[2]
