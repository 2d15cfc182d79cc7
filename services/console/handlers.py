"""The console service's endpoints. It answers health now; its features are tracked in their own issue."""

from __future__ import annotations

from flint.bus import Endpoint
from flint.service import ServiceContext


async def setup(ctx: ServiceContext) -> list[Endpoint]:
    return []
