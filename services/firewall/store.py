"""Rulesets and their usage index in KV flint-firewall, with revision-checked writes.

Keys: ``ruleset.<name>`` (a RulesetDoc; its KV revision is the ruleset's revision) and
``usage.<host>.<vm uuid>`` (a Usage, written by the VM's firewall service). Used by the gateway (CRUD)
and the firewall services (mirror and usage).
"""

from __future__ import annotations

import time

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from flint import bus, subjects
from flint.contracts.common import ServiceError
from flint.contracts.firewall import Rule, RulesetDoc, Usage
from flint.kvlist import KvItem, kv_items

_dec_ruleset = msgspec.json.Decoder(RulesetDoc)
_dec_usage = msgspec.json.Decoder(Usage)


class StaleRevision(ServiceError):
    """412: somebody else changed the ruleset since ``expected``; ``current`` is its revision now."""

    def __init__(self, name: str, expected: int, current: int | None):
        if current is None:
            message = f"ruleset {name!r} was deleted since revision {expected}"
        else:
            message = (f"ruleset {name!r} changed since revision {expected}: its current revision is {current}. "
                       f"Reload it, apply your change again and send If-Match: {current}")
        super().__init__(412, message)
        self.current = current


def decode_ruleset(data: bytes) -> RulesetDoc:
    return _dec_ruleset.decode(data)


async def entries(kv: KeyValue, prefix: str, timeout: float = 10.0) -> list[KvItem]:
    """The current entries under ``prefix`` (values and revisions): flint/kvlist.py says why not a watch."""
    return await kv_items(kv._js, kv._name, f"{prefix}>", timeout=timeout)


class RulesetStore:
    def __init__(self, kv: KeyValue):
        self.kv = kv

    async def list(self) -> list[tuple[RulesetDoc, int]]:
        found = await entries(self.kv, subjects.KV_FW_RULESET_PREFIX)
        docs = []
        for entry in found:
            if entry.value:
                docs.append((decode_ruleset(entry.value), entry.revision))
        return sorted(docs, key=lambda d: d[0].name.lower())

    async def get(self, name: str) -> tuple[RulesetDoc, int] | None:
        try:
            entry = await self.kv.get(subjects.kv_fw_ruleset(name))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return decode_ruleset(entry.value), entry.revision

    async def create(self, name: str, description: str, rules: list[Rule], user: str) -> tuple[RulesetDoc, int]:
        now = time.time()
        doc = RulesetDoc(name=name, description=description, rules=rules, created_at=now, updated_at=now,
                         updated_by=user)
        try:
            revision = await self.kv.create(subjects.kv_fw_ruleset(name), bus.encode(doc))
        except KeyWrongLastSequenceError:
            raise ServiceError(409, f"a ruleset named {name!r} exists already", "name") from None
        return doc, revision

    async def update(self, name: str, description: str, rules: list[Rule], user: str,
                     revision: int) -> tuple[RulesetDoc, int]:
        current = await self.get(name)
        if current is None:
            raise ServiceError(404, f"no ruleset named {name!r}")
        old, current_revision = current
        if revision != current_revision:
            raise StaleRevision(name, revision, current_revision)
        doc = RulesetDoc(name=name, description=description, rules=rules, created_at=old.created_at,
                         updated_at=time.time(), updated_by=user)
        try:
            new_revision = await self.kv.update(subjects.kv_fw_ruleset(name), bus.encode(doc), last=revision)
        except KeyWrongLastSequenceError:
            now = await self.get(name)
            raise StaleRevision(name, revision, now[1] if now else None) from None
        return doc, new_revision

    async def delete(self, name: str, revision: int | None = None) -> None:
        current = await self.get(name)
        if current is None:
            raise ServiceError(404, f"no ruleset named {name!r}")
        if revision is not None and revision != current[1]:
            raise StaleRevision(name, revision, current[1])
        try:
            await self.kv.delete(subjects.kv_fw_ruleset(name), last=current[1])
        except KeyWrongLastSequenceError:
            now = await self.get(name)
            raise StaleRevision(name, current[1], now[1] if now else None) from None

    # ---- usage index -----------------------------------------------------------------------------

    async def usages(self) -> list[Usage]:
        return [_dec_usage.decode(e.value) for e in await entries(self.kv, subjects.KV_FW_USAGE_PREFIX) if e.value]

    async def set_usage(self, usage: Usage) -> None:
        key = subjects.kv_fw_usage(usage.host, usage.id)
        if usage.rulesets:
            await self.kv.put(key, bus.encode(usage))
            return
        try:
            await self.kv.get(key)
        except KeyNotFoundError:
            return
        await self.kv.delete(key)

    async def drop_usage(self, host: str, vm_id: str) -> None:
        await self.set_usage(Usage(host=host, id=vm_id))
