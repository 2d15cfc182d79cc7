"""`flint nats credentials …` and `flint events tail`: NATS as an integration surface."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

from flint.natsauth import NatsAuth, load_credentials


def _settings():
    from flint.config import load_settings

    return load_settings()


def _reload_server(auth: NatsAuth) -> str:
    """Rewrite the server configuration from the users file and make a running nats-server reload it."""
    pid_file = auth.dir / "nats-server.pid"
    if not auth.config_file.is_file():
        return "no embedded nats-server configuration yet: it takes effect at the next `flint up`"
    conf = json.loads(auth.config_file.read_text())
    tls = conf.get("tls")
    from pathlib import Path

    auth.write_server_config(conf["host"], conf["port"], Path(conf["jetstream"]["store_dir"]),
                             (Path(tls["cert_file"]), Path(tls["key_file"])) if tls else None)
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)  # nats-server reloads its configuration on SIGHUP
        return f"nats-server (pid {pid}) reloaded"
    except (OSError, ValueError):
        return "nats-server is not running: it takes effect at the next `flint up`"


def credentials_create(args) -> int:
    settings = _settings()
    auth = NatsAuth(settings.data_dir)
    system = auth.dir / "system.creds"
    url, ca = args.url, None
    if system.is_file():
        sys_creds = load_credentials(system)
        url, ca = url or sys_creds.url, sys_creds.ca
    if not url:
        print("flint: give --url (no embedded NATS has run from this data dir)", file=sys.stderr)
        return 2
    try:
        creds = auth.add_user(args.role, args.host, url, ca)
    except ValueError as exc:
        print(f"flint: {exc}", file=sys.stderr)
        return 2
    print(_reload_server(auth), file=sys.stderr)
    print(creds.dump(), end="")
    return 0


def server_init(args) -> int:
    """The configuration of a nats-server Flint does not start itself (compose's `nats` service)."""
    from pathlib import Path

    from flint.natsauth import prepare_server

    settings = _settings()
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        print(f"flint: --listen {args.listen!r}: expected ADDRESS:PORT", file=sys.stderr)
        return 2
    store = Path(args.store) if args.store else settings.data_dir / "nats"
    try:
        prepared = prepare_server(settings.data_dir, host, int(port), store, url=args.url,
                                  tls_names=set(args.tls_name or ()))
    except ValueError as exc:
        print(f"flint: {exc}", file=sys.stderr)
        return 2
    print(f"nats-server configuration: {prepared.config}")
    print(f"system credentials (FLINT_NATS_CREDS): {prepared.creds}")
    print(f"clients connect to: {prepared.url}")
    return 0


def credentials_list(args) -> int:
    auth = NatsAuth(_settings().data_dir)
    for u in auth.users():
        print(f"{u.user}\t{u.role}\t{u.host or ''}")
    return 0


def credentials_revoke(args) -> int:
    auth = NatsAuth(_settings().data_dir)
    if args.user == "flint-system" or not auth.remove_user(args.user):
        print(f"flint: no removable NATS user {args.user!r}", file=sys.stderr)
        return 1
    print(_reload_server(auth), file=sys.stderr)
    return 0


async def _tail(url: str, creds: str | None, subject: str, as_json: bool, limit: int | None) -> None:
    from flint import bus

    nc = await bus.connect(url, name="flint-events-tail", creds=creds)
    seen = 0
    done = asyncio.Event()

    async def on_msg(msg) -> None:
        nonlocal seen
        if as_json:
            print(msg.data.decode(), flush=True)
        else:
            e = json.loads(msg.data)
            state = (e.get("data") or {}).get("state", "") if isinstance(e.get("data"), dict) else ""
            print(f"{e.get('host')}\t{e.get('kind')}\t{e.get('type')}\t{e.get('id')}\t{state}", flush=True)
        seen += 1
        if limit and seen >= limit:
            done.set()

    await nc.subscribe(subject, cb=on_msg)
    await nc.flush()
    print("listening", file=sys.stderr, flush=True)
    try:
        await done.wait()
    finally:
        await nc.close()


def events_tail(args) -> int:
    settings = _settings()
    creds = settings.nats_creds
    if creds is None and (NatsAuth(settings.data_dir).dir / "system.creds").is_file() and settings.nats_url is None:
        creds = str(NatsAuth(settings.data_dir).dir / "system.creds")  # on the central machine, as root
    url = settings.nats_url or (load_credentials(creds).url if creds else settings.effective_nats_url)
    subject = f"flint.evt.{args.host or '*'}.{args.kind or '*'}.>"
    try:
        asyncio.run(_tail(url, creds, subject, args.json, args.count))
    except KeyboardInterrupt:
        pass
    return 0


def contracts_export(args) -> int:
    from pathlib import Path

    from flint.contracts.export import export

    written = export(Path(args.out))
    print(f"wrote {len(written)} files under {args.out}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    contracts = sub.add_parser("contracts", help="the published message contracts").add_subparsers(
        dest="verb", required=True
    )
    p = contracts.add_parser("export", help="JSON Schemas and the AsyncAPI document")
    p.add_argument("--out", default="docs/contracts")
    p.set_defaults(func=contracts_export)

    nats_p = sub.add_parser("nats", help="NATS credentials for agents and subscribers").add_subparsers(
        dest="verb", required=True
    )
    p = nats_p.add_parser("init", help="configure a nats-server run outside `flint up` (compose)")
    p.add_argument("--listen", default="127.0.0.1:4222", help="ADDRESS:PORT nats-server listens on; "
                   "beyond loopback it serves TLS")
    p.add_argument("--url", help="the URL Flint's processes connect to (default: from --listen)")
    p.add_argument("--store", help="JetStream's directory as nats-server sees it (default: <data dir>/nats)")
    p.add_argument("--tls-name", action="append", help="a name or address the certificate must also cover")
    p.set_defaults(func=server_init)
    creds = nats_p.add_parser("credentials", help="credentials files").add_subparsers(dest="what", required=True)
    p = creds.add_parser("create", help="a new user; prints its credentials file (shown once)")
    p.add_argument("--role", required=True, choices=["agent", "subscriber"])
    p.add_argument("--host", help="the host an agent serves")
    p.add_argument("--url", help="the NATS URL the holder connects to (default: the embedded server's)")
    p.set_defaults(func=credentials_create)
    creds.add_parser("list", help="users").set_defaults(func=credentials_list)
    p = creds.add_parser("revoke", help="remove a user")
    p.add_argument("user")
    p.set_defaults(func=credentials_revoke)

    events = sub.add_parser("events", help="Flint's events").add_subparsers(dest="verb", required=True)
    p = events.add_parser("tail", help="follow events (FLINT_NATS_URL, FLINT_NATS_CREDS)")
    p.add_argument("--host")
    p.add_argument("--kind", choices=["domain", "pool", "network", "host", "job", "firewall"])
    p.add_argument("--json", action="store_true", help="one event per line as JSON")
    p.add_argument("--count", type=int, help="stop after this many events")
    p.set_defaults(func=events_tail)
