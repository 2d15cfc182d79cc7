"""`flint vm console NAME`: the VM's serial console in this terminal, over the gateway's console WebSocket
(FLINT_URL, FLINT_TOKEN), like `virsh console`: raw terminal, Ctrl-] ends the session."""

from __future__ import annotations

import contextlib
import os
import select
import ssl
import sys
import termios
import threading
import tty

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from flint.cli.client import ApiError, Client

ESCAPE = b"\x1d"  # Ctrl-]
OK_CODES = (1000, 1005, 4001, 4404, 4409)  # ended normally, taken over elsewhere, or the VM stopped or went away


def _ws_url(client: Client, path: str) -> str:
    base = client.url
    scheme = "wss" if base.startswith("https://") else "ws"
    return f"{scheme}://{base.split('://', 1)[1]}{path}"


def _ssl_context(client: Client, url: str):
    if not url.startswith("wss://"):
        return None
    if os.environ.get("FLINT_INSECURE") == "1":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=os.environ.get("FLINT_CA") or None)


def serial_console(vm: dict, client: Client) -> int:
    ticket = client.post(f"/vms/{vm['id']}/console", {"type": "serial"})
    url = _ws_url(client, ticket["url"])
    headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
    try:
        ws = connect(url, additional_headers=headers, ssl=_ssl_context(client, url), open_timeout=15,
                     max_size=None, compression=None, proxy=None)
    except InvalidStatus as exc:
        raise ApiError(exc.response.status_code, f"the console was refused (HTTP {exc.response.status_code})") from exc
    except OSError as exc:
        raise ApiError(0, f"cannot reach Flint at {client.url}: {exc}") from exc
    interactive = os.isatty(0)
    print(f"Connected to {vm['name']} (serial console). Escape character is ^]", file=sys.stderr, flush=True)
    ended: dict[str, str] = {}

    def pump_out() -> None:
        try:
            for data in ws:
                os.write(1, data if isinstance(data, bytes) else data.encode())
        except ConnectionClosed:
            pass
        frame = ws.close_rcvd
        if frame is not None:
            ended["code"] = str(frame.code)
            ended["reason"] = frame.reason if frame.code in OK_CODES else f"{frame.reason or 'closed'} (code {frame.code})"
        ended.setdefault("reason", "")
        with contextlib.suppress(OSError):
            os.write(wake_w, b"x")

    wake_r, wake_w = os.pipe()
    saved = termios.tcgetattr(0) if interactive else None
    reader = threading.Thread(target=pump_out, daemon=True)
    try:
        if interactive:
            tty.setraw(0)
        reader.start()
        while "reason" not in ended:
            ready, _, _ = select.select([0, wake_r], [], [])
            if 0 not in ready:
                continue
            data = os.read(0, 4096)
            if not data:  # stdin closed: keep showing output until the server ends the session
                select.select([wake_r], [], [])
                continue
            if ESCAPE in data:
                data = data.split(ESCAPE, 1)[0]
                if data:
                    ws.send(data)
                ended["reason"] = ""
                break
            try:
                ws.send(data)
            except ConnectionClosed:
                break
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        with contextlib.suppress(Exception):
            ws.close()
        reader.join(timeout=5)
        os.close(wake_r)
        os.close(wake_w)
    reason = ended.get("reason", "")
    print(f"\r\nConsole closed{': ' + reason if reason else ''}.", file=sys.stderr, flush=True)
    return 0 if int(ended.get("code", 1000)) in OK_CODES else 1
