"""The `flint` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from flint import __version__
from flint.cli import firewall as firewall_cmds
from flint.cli import natscmd, network_cmds, storage_cmds, verbs


def _settings():
    from flint.config import load_settings

    try:
        return load_settings()
    except ValueError as exc:
        print(f"flint: {exc}", file=sys.stderr)
        sys.exit(2)


def cmd_up(args) -> int:
    from flint.log import setup_logging
    from flint.supervisor import run_up

    settings = _settings()
    setup_logging(settings.log_format, service="supervisor", host=settings.host)
    port = int(os.environ.get("FLINT_NATS_PORT", "4222"))
    return asyncio.run(run_up(settings, demo=args.demo, nats_port=port))


def cmd_agent(args) -> int:
    from dataclasses import replace

    from flint.config import HOST_NAME_RE
    from flint.log import setup_logging
    from flint.supervisor import run_agent

    if not HOST_NAME_RE.match(args.host):
        print(f"flint agent: --host {args.host!r}: 1-63 of a-z, 0-9 and '-'", file=sys.stderr)
        return 2
    settings = _settings()
    if args.nats:
        settings = replace(settings, nats_url=args.nats)
    if not settings.nats_url:
        print("flint agent: give --nats URL (or FLINT_NATS_URL) of the central NATS", file=sys.stderr)
        return 2
    setup_logging(settings.log_format, service="agent", host=args.host)
    return asyncio.run(run_agent(settings, args.host, args.uri or settings.libvirt_uri))


def cmd_doctor(args) -> int:
    from flint.cli import doctor

    return doctor.run(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flint", description="Manage KVM/QEMU virtual machines.")
    parser.add_argument("--version", action="version", version=f"flint {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up", help="run NATS, the services for host 'local' and the gateway")
    p.add_argument("--demo", action="store_true", help="use libvirt's test driver instead of QEMU")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("agent", help="run the services of one host, joined to an existing NATS")
    p.add_argument("--host", required=True)
    p.add_argument("--uri", help="libvirt URI (default FLINT_LIBVIRT_URI or qemu:///system)")
    p.add_argument("--nats", help="NATS URL (default FLINT_NATS_URL)")
    p.set_defaults(func=cmd_agent)
    p = sub.add_parser("doctor", help="check this machine and say what is missing", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_doctor)
    verbs.add_parsers(sub)
    storage_cmds.add_parsers(sub)
    network_cmds.add_parsers(sub)
    firewall_cmds.add_parsers(sub)
    natscmd.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["doctor"]:  # doctor parses its own options (--json)
        from flint.cli import doctor

        return doctor.run(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "needs_client", False):
        return verbs.run_verb(args)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
