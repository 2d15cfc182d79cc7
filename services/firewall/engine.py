"""One host's firewall: mirrors every ruleset of KV flint-firewall into a libvirt nwfilter, keeps its VMs'
NIC filters as their settings say, and answers the service's requests.

- KV watch on ``ruleset.>``: a put (re)defines ``flint-rs-<name>`` (libvirt re-applies it to running VMs
  at once), a delete removes it. Rulesets are global: every host mirrors all of them.
- Full sync on start, on every libvirt (re)connect and every ``RESYNC_S``: rulesets, every VM whose
  metadata holds firewall settings, orphaned NIC filters, and this host's ``usage.*`` index.
- Inventory's domain events: a deleted VM loses its NIC filters and usage entry; a VM whose NICs changed
  is re-applied.
All libvirt changes run one at a time (``lock``).
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import structlog

from flint import subjects
from flint.contracts.common import ServiceError
from flint.contracts.events import Event
from flint.contracts.firewall import (
    FirewallChange,
    NWFilterList,
    RulesetDoc,
    Usage,
    VMFirewall,
    VMFirewallSet,
)
from flint.service import ServiceContext
from services.firewall import apply
from services.firewall.render import nic_filter_prefix, ruleset_filter, ruleset_filter_name
from services.firewall.store import RulesetStore, decode_ruleset
from services.firewall.validate import normalize_vm_settings, ruleset_name_problem

log = structlog.get_logger()
RESYNC_S = 600.0
_event_dec = msgspec.json.Decoder(Event)


class FirewallEngine:
    def __init__(self, ctx: ServiceContext, store: RulesetStore):
        self.ctx = ctx
        self.store = store
        self.rulesets: dict[str, tuple[RulesetDoc, int]] = {}  # the KV mirror
        self.deleted: set[str] = set()  # delete markers seen (removed while this host was away, too)
        self.defined: dict[str, int] = {}  # ruleset -> revision whose filter is defined here
        self.loaded = asyncio.Event()  # the KV mirror holds every ruleset
        self.lock = asyncio.Lock()
        self.supported = True  # False on drivers without nwfilter (libvirt's test driver)
        self.applied: dict[str, set[str]] = {}  # VM -> MACs last filtered (VMs with active settings)
        self.checked: set[str] = set()  # VMs whose metadata was read since the last full sync
        self._sync_wanted = asyncio.Event()

    @property
    def host(self) -> str:
        return self.ctx.host

    async def call(self, fn, *args):
        """A blocking libvirt function in a thread; 503 at once while libvirt is not connected (the
        reconnect triggers a full sync, which catches up with whatever failed meanwhile)."""
        return await self.ctx.virt.call(fn, self.ctx.virt.conn, *args)

    # ---- background tasks --------------------------------------------------------------------------

    def start(self) -> None:
        self.ctx.virt.on_connect(self._on_connect)
        self.ctx.spawn(self.watch_rulesets(), "firewall-rulesets")
        self.ctx.spawn(self.sync_loop(), "firewall-sync")
        self.ctx.spawn(self.watch_domains(), "firewall-domains")

    async def _on_connect(self, _conn) -> None:
        self._sync_wanted.set()

    async def watch_rulesets(self) -> None:
        kv = self.store.kv
        while True:
            try:
                watcher = await kv.watch(f"{subjects.KV_FW_RULESET_PREFIX}>")
                async for entry in watcher:
                    if entry is None:
                        self._loaded()
                        continue
                    name = entry.key[len(subjects.KV_FW_RULESET_PREFIX):]
                    if entry.operation in ("DEL", "PURGE") or not entry.value:
                        self.rulesets.pop(name, None)
                        self.deleted.add(name)
                        if self.loaded.is_set():
                            await self.remove_ruleset(name)
                    else:
                        try:
                            doc = decode_ruleset(entry.value)
                        except msgspec.DecodeError as exc:
                            log.warning("undecodable ruleset skipped", key=entry.key, error=str(exc))
                            continue
                        self.rulesets[name] = (doc, entry.revision)
                        self.deleted.discard(name)
                        if self.loaded.is_set():
                            await self.define_ruleset(name)
                    if not self.loaded.is_set() and entry.delta == 0:
                        self._loaded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - NATS trouble: watch again
                log.warning("ruleset watch failed, watching again", error=repr(exc))
                await asyncio.sleep(1)

    def _loaded(self) -> None:
        if not self.loaded.is_set():
            self.loaded.set()
            self._sync_wanted.set()

    async def sync_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._sync_wanted.wait(), RESYNC_S)
            except TimeoutError:
                pass
            self._sync_wanted.clear()
            await self.loaded.wait()
            await self.ctx.virt.wait_connected()
            try:
                await self.sync_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - logged; the next sync tries again
                log.error("firewall sync failed", error=repr(exc))

    async def watch_domains(self) -> None:
        sub = await self.ctx.nc.subscribe(subjects.events_of_kind(self.host, "domain"))
        async for msg in sub.messages:
            try:
                evt = _event_dec.decode(msg.data)
                await self.on_domain_event(evt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop the rest
                log.warning("domain event not handled", error=repr(exc))

    # ---- rulesets ----------------------------------------------------------------------------------

    async def define_ruleset(self, name: str) -> None:
        current = self.rulesets.get(name)
        if current is None or not self.supported:
            return
        doc, revision = current
        async with self.lock:
            try:
                changed = await self.call(apply.define_filter, ruleset_filter(doc))
            except apply.NoNWFilter as exc:
                self._unsupported(exc)
                return
            except ServiceError as exc:
                log.error("ruleset filter not defined", ruleset=name, error=exc.message)
                await self.ctx.events.publish("firewall", name, "ruleset.failed",
                                              FirewallChange(ruleset=name, revision=revision, error=exc.message))
                return
            self.defined[name] = revision
        log.info("ruleset filter defined", ruleset=name, revision=revision, changed=changed)
        await self.ctx.events.publish("firewall", name, "ruleset.applied",
                                      FirewallChange(ruleset=name, revision=revision))

    async def remove_ruleset(self, name: str) -> None:
        if not self.supported:
            return
        async with self.lock:
            self.defined.pop(name, None)
            try:
                removed = await self.call(apply.undefine_filter, ruleset_filter_name(name))
            except apply.NoNWFilter as exc:
                self._unsupported(exc)
                return
            except ServiceError as exc:  # in use by a VM on this host (deleted behind Flint's back)
                log.warning("ruleset filter kept", ruleset=name, error=exc.message)
                return
        if removed:
            log.info("ruleset filter removed", ruleset=name)
            await self.ctx.events.publish("firewall", name, "ruleset.removed", FirewallChange(ruleset=name))

    def _unsupported(self, exc: ServiceError) -> None:
        if self.supported:
            log.warning("no nwfilter support here: firewall disabled on this host", detail=exc.message)
        self.supported = False

    # ---- full sync ---------------------------------------------------------------------------------

    async def sync_all(self) -> None:
        started = time.monotonic()
        for name in sorted(self.rulesets):
            await self.define_ruleset(name)
        if not self.supported:
            return
        for name in sorted(self.deleted):
            await self.remove_ruleset(name)
        async with self.lock:
            vms = await self.call(apply.all_settings)
        usages = []
        for vm_id, (vm_name, settings) in vms.items():
            if settings.active:
                missing = [r for r in settings.rulesets if r not in self.defined]
                if missing:
                    # Unknown here: deleted behind Flint's back, or another Flint owns this libvirt too.
                    log.warning("VM firewall not re-applied: unknown rulesets", vm=vm_id, missing=missing)
                else:
                    try:
                        async with self.lock:
                            result = await self.call(apply.apply_vm, vm_id, settings, self.host,
                                                     set(self.defined), False)
                        self.applied[vm_id] = {n.mac for n in result.nics}
                    except ServiceError as exc:
                        log.warning("VM firewall not re-applied", vm=vm_id, error=exc.message)
            if settings.rulesets:
                usages.append(Usage(host=self.host, id=vm_id, name=vm_name, rulesets=list(settings.rulesets)))
        async with self.lock:
            for orphan in await self.call(apply.orphan_nic_filters):
                try:
                    await self.call(apply.undefine_filter, orphan)
                    log.info("orphaned NIC filter removed", filter=orphan)
                except ServiceError as exc:
                    log.warning("orphaned NIC filter kept", filter=orphan, error=exc.message)
        await self._write_usages(usages)
        self.checked = set(vms) | set(await self.call(apply.domain_ids))
        log.info("firewall synced", rulesets=len(self.defined), vms=len(vms),
                 seconds=round(time.monotonic() - started, 3))

    async def _write_usages(self, usages: list[Usage]) -> None:
        keep = {u.id for u in usages}
        for usage in usages:
            await self.store.set_usage(usage)
        for old in await self.store.usages():
            if old.host == self.host and old.id not in keep:
                await self.store.drop_usage(self.host, old.id)

    # ---- domain events -----------------------------------------------------------------------------

    async def on_domain_event(self, evt: Event) -> None:
        if not self.supported or not self.loaded.is_set():
            return
        vm_id = evt.id
        if evt.type == "deleted":
            self.applied.pop(vm_id, None)
            self.checked.discard(vm_id)
            async with self.lock:
                for name in await self.call(apply.filter_names, nic_filter_prefix(vm_id)):
                    try:
                        await self.call(apply.undefine_filter, name)
                    except ServiceError as exc:
                        log.warning("NIC filter of a deleted VM kept", filter=name, error=exc.message)
            await self.store.drop_usage(self.host, vm_id)
            return
        if evt.type != "updated" or not isinstance(evt.data, dict):
            return
        macs = {str(n.get("mac", "")).lower() for n in evt.data.get("nics", []) if isinstance(n, dict)}
        if vm_id in self.applied and self.applied[vm_id] == macs:
            return
        if vm_id not in self.applied and vm_id in self.checked:
            return  # no firewall settings, and the full sync or an earlier event told us so
        self.checked.add(vm_id)
        try:
            async with self.lock:
                current = await self.call(apply.describe, vm_id, self.host)
        except ServiceError:
            return
        settings = current.settings
        if not settings.active or any(r not in self.defined for r in settings.rulesets):
            return
        async with self.lock:
            result = await self.call(apply.apply_vm, vm_id, settings, self.host, set(self.defined), False)
        self.applied[vm_id] = {n.mac for n in result.nics}
        log.info("VM firewall re-applied after a change", vm=vm_id, nics=sorted(self.applied[vm_id]))

    # ---- requests ----------------------------------------------------------------------------------

    async def _ready(self) -> None:
        try:
            await asyncio.wait_for(self.loaded.wait(), 15)
        except TimeoutError:
            raise ServiceError(503, f"the firewall of host {self.host} has not loaded the rulesets yet") from None
        if not self.supported:
            raise apply.NoNWFilter("the driver refused nwfilter calls")

    async def vm_get(self, vm_id: str) -> VMFirewall:
        await self._ready()
        return await self.call(apply.describe, vm_id, self.host, None, set(self.rulesets))

    async def vm_set(self, req: VMFirewallSet) -> VMFirewall:
        await self._ready()
        macs = await self.call(apply.vm_macs, req.id)
        for name in req.settings.rulesets:
            if name not in self.rulesets:  # created a moment ago: the KV watch may not have brought it yet
                found = await self.store.get(name) if ruleset_name_problem(name) is None else None
                if found is not None:
                    self.rulesets[name] = found
        settings = normalize_vm_settings(req.settings, self.rulesets.keys(), macs)
        for name in settings.rulesets:
            if self.defined.get(name) != self.rulesets[name][1]:
                await self.define_ruleset(name)
            if name not in self.defined:
                raise ServiceError(502, f"ruleset {name!r} could not be made an nwfilter on host {self.host}; "
                                        "see the firewall service's log")
        async with self.lock:
            result = await self.call(apply.apply_vm, req.id, settings, self.host, set(self.defined), True)
        if settings.active:
            self.applied[req.id] = {n.mac for n in result.nics}
        else:
            self.applied.pop(req.id, None)
        self.checked.add(req.id)
        await self.store.set_usage(Usage(host=self.host, id=req.id, name=result.name, rulesets=settings.rulesets))
        log.info("VM firewall set", vm=req.id, user=req.user, rulesets=settings.rulesets,
                 anti_spoofing=settings.anti_spoofing, default_policy=settings.default_policy)
        await self.ctx.events.publish("firewall", req.id, "vm.applied", FirewallChange(vm=result))
        return result

    async def nwfilters(self) -> NWFilterList:
        if not self.supported:
            raise apply.NoNWFilter("the driver refused nwfilter calls")
        try:
            filters = await self.call(apply.list_filters)
        except apply.NoNWFilter as exc:
            self._unsupported(exc)
            raise
        return NWFilterList(host=self.host, filters=filters)
