"""What handlers get from the app: typed access to the shared state, set up in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client as NATS

from flint.config import Settings
from gateway.accounts import Accounts
from gateway.eventhub import EventHub
from gateway.throttle import LoginThrottle
from gateway.view import InventoryView


@dataclass
class Gateway:
    settings: Settings
    nc: NATS
    accounts: Accounts
    view: InventoryView
    hub: EventHub
    throttle: LoginThrottle


def gw(request) -> Gateway:
    return request.app.state.gateway
