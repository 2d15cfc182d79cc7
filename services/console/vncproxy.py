"""python -m services.console.vncproxy --fd N --lookup PATH: websockify (the library) for one host's VNC
consoles.

The console service starts this process with a listening socket on 127.0.0.1 (``--fd``). websockify forks
a process per connection; in that process the token plugin hands the ticket to the console service over
its Unix socket (``--lookup``), which consumes it in KV flint-console (a revision-checked delete, so the
ticket opens one session however many processes try) and answers where the VM's VNC server is. Only
tickets the gateway claimed after checking the user are accepted. The ticket is never logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sys
from urllib.parse import parse_qs, urlparse

import msgspec
from websockify.websocketproxy import ProxyRequestHandler, WebSocketProxy

from flint.contracts.console import VncLookupReply, VncTargetRequest

_TOKEN_RE = re.compile(r"token=[^&\s'\"]*")
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(VncLookupReply)
log = logging.getLogger("flint.vncproxy")


def _redact(text: str) -> str:
    return _TOKEN_RE.sub("token=<redacted>", text)


class TicketPlugin:
    """websockify token plugin: ``lookup(token) -> (host, port)`` or None, run in the connection's process."""

    def __init__(self, lookup_path: str):
        self.lookup_path = lookup_path

    def lookup(self, token: str):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(15)
                s.connect(self.lookup_path)
                s.sendall(_enc.encode(VncTargetRequest(ticket=token)) + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            reply = _dec.decode(data)
        except (OSError, msgspec.DecodeError) as exc:
            log.warning("console ticket check failed: %r", exc)
            return None
        if reply.target is None:
            log.warning("console ticket refused: %s", reply.message)
            return None
        if reply.target.host == "unix_socket":
            return ("unix_socket", reply.target.path)
        return (reply.target.host, reply.target.port)


class Handler(ProxyRequestHandler):
    # Read up to this much from the VNC server per WebSocket message (websockify's default is 64 KiB): a
    # full screen update arrives in fewer, larger messages, which the gateway relays with less work.
    buffer_size = 256 * 1024

    def log_message(self, format, *args):  # noqa: A002 - websockify's signature
        super().log_message("%s", _redact(format % args))

    def get_target(self, target_plugin):
        # websockify's own version puts the token into its error message (and so into logs).
        token = (parse_qs(urlparse(self.path).query).get("token") or [None])[0]
        if not token:
            raise self.server.EClose("no console ticket")
        target = target_plugin.lookup(token)
        if target is None:
            raise self.server.EClose("console ticket refused")
        return target


class Proxy(WebSocketProxy):
    def __init__(self, *args, **kwargs):
        self._parent = os.getppid()
        super().__init__(*args, **kwargs)

    def poll(self):
        # Runs about once a second while idle: end with the console service that started us.
        if os.getppid() != self._parent:
            self.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="listening socket inherited from the console service")
    parser.add_argument("--lookup", required=True, help="the console service's Unix socket for tickets")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="vncproxy %(levelname)s %(message)s")
    plugin = TicketPlugin(args.lookup)
    server = Proxy(
        RequestHandlerClass=Handler,
        listen_fd=args.fd,
        token_plugin=plugin,
        verbose=False,
        heartbeat=None,
        tcp_keepalive=True,
    )
    server.start_server()


if __name__ == "__main__":
    main()
