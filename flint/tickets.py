"""Console tickets in KV flint-console: issue (console service), claim (gateway), consume (console service).

The ticket is 32 random bytes handed to the user once; the store keeps only its sha256. A ticket is valid
for at most 30 s from issue and opens one session: the claim and the consume are revision-checked KV
writes, so of two processes racing with the same ticket (websockify forks a process per connection) one
wins and the other is refused. Times are the issuing host's clock; hosts keep their clocks in sync (NTP).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable

import msgspec
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError

from flint import subjects
from flint.contracts.console import CLAIM_TTL_S, TICKET_MAX_TTL_S, Relay, TicketRecord

# Close codes a console WebSocket ends with (4000-4999 are the application's own).
CLOSE_REFUSED = 4403  # unknown, used, someone else's, or access lost
CLOSE_EXPIRED = 4408
CLOSE_NOT_RUNNING = 4409
CLOSE_UNAVAILABLE = 4502

_dec = msgspec.json.Decoder(TicketRecord)
_enc = msgspec.json.Encoder()
_WRONG_LAST_SEQUENCE = (10071, 10164)


class TicketRefused(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def _lost_race(exc: Exception) -> bool:
    return isinstance(exc, KeyWrongLastSequenceError) or (
        isinstance(exc, APIError) and exc.err_code in _WRONG_LAST_SEQUENCE
    )


USED = "this console ticket is unknown or was already used; open the console again for a new one"


class TicketStore:
    def __init__(self, kv, clock: Callable[[], float] = time.time):
        self.kv = kv
        self.clock = clock

    async def issue(
        self, *, user: str, vm_id: str, vm_name: str, host: str, type: str, ttl: float, relay: Relay | None = None
    ) -> tuple[str, TicketRecord]:
        ticket = secrets.token_urlsafe(32)
        now = self.clock()
        record = TicketRecord(
            user=user, vm_id=vm_id, vm_name=vm_name, host=host, type=type,
            issued_at=now, expires_at=now + min(ttl, TICKET_MAX_TTL_S), relay=relay or Relay(),
        )
        await self.kv.create(subjects.kv_console_ticket(digest(ticket)), _enc.encode(record))
        return ticket, record

    async def _get(self, ticket: str):
        if not ticket or len(ticket) > 100:
            raise TicketRefused(CLOSE_REFUSED, USED)
        try:
            entry = await self.kv.get(subjects.kv_console_ticket(digest(ticket)))
        except KeyNotFoundError:
            raise TicketRefused(CLOSE_REFUSED, USED) from None
        if not entry.value:
            raise TicketRefused(CLOSE_REFUSED, USED)
        return entry, _dec.decode(entry.value)

    async def claim(self, ticket: str, *, user: str) -> TicketRecord:
        """The gateway, after checking who connects: issued -> claimed. Refuses used, expired, foreign."""
        entry, record = await self._get(ticket)
        if record.state != "issued":
            raise TicketRefused(CLOSE_REFUSED, USED)
        if self.clock() > record.expires_at:
            ttl = round(record.expires_at - record.issued_at)
            raise TicketRefused(CLOSE_EXPIRED, f"this console ticket expired (tickets are valid for {ttl} s); open the console again")
        if record.user != user:
            raise TicketRefused(CLOSE_REFUSED, "this console ticket was issued to another user")
        record.state = "claimed"
        record.claimed_at = self.clock()
        try:
            await self.kv.update(entry.key, _enc.encode(record), last=entry.revision)
        except Exception as exc:
            if _lost_race(exc):
                raise TicketRefused(CLOSE_REFUSED, USED) from None
            raise
        return record

    async def consume(self, ticket: str, *, host: str, type: str | None = None) -> TicketRecord:
        """The console service, opening the session: claimed -> gone. Only a claimed ticket of this host."""
        entry, record = await self._get(ticket)
        if record.state != "claimed" or record.host != host or (type is not None and record.type != type):
            raise TicketRefused(CLOSE_REFUSED, USED)
        if self.clock() > record.expires_at + CLAIM_TTL_S:
            raise TicketRefused(CLOSE_EXPIRED, "this console ticket expired before the session opened")
        try:
            await self.kv.delete(entry.key, last=entry.revision)
        except Exception as exc:
            if _lost_race(exc):
                raise TicketRefused(CLOSE_REFUSED, USED) from None
            raise
        return record
