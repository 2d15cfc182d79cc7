"""Macros: named services that expand to protocol and ports (Proxmox's idea), as data."""

from __future__ import annotations

from flint.contracts.firewall import Macro, MacroEntry


def _m(name: str, description: str, *entries: tuple) -> Macro:
    return Macro(name=name, description=description,
                 entries=[MacroEntry(protocol=e[0], ports=e[1] if len(e) > 1 else None,
                                     icmp_type=e[2] if len(e) > 2 else None) for e in entries])


MACROS: list[Macro] = [
    _m("SSH", "Secure shell", ("tcp", "22")),
    _m("HTTP", "Web (plain)", ("tcp", "80")),
    _m("HTTPS", "Web (TLS), with HTTP/3", ("tcp", "443"), ("udp", "443")),
    _m("Web", "HTTP and HTTPS", ("tcp", "80,443")),
    _m("DNS", "Domain name service", ("udp", "53"), ("tcp", "53")),
    _m("Ping", "ICMP echo request (ICMPv6 echo request for IPv6)", ("icmp", None, 8)),
    _m("RDP", "Remote desktop", ("tcp", "3389")),
    _m("VNC", "VNC displays 0-9", ("tcp", "5900-5909")),
    _m("SMTP", "Mail transfer", ("tcp", "25")),
    _m("SMTPS", "Mail transfer over TLS", ("tcp", "465")),
    _m("Submission", "Mail submission", ("tcp", "587")),
    _m("IMAP", "Mail access", ("tcp", "143")),
    _m("IMAPS", "Mail access over TLS", ("tcp", "993")),
    _m("POP3", "Mail download", ("tcp", "110")),
    _m("POP3S", "Mail download over TLS", ("tcp", "995")),
    _m("FTP", "File transfer (control)", ("tcp", "21")),
    _m("NTP", "Time", ("udp", "123")),
    _m("SNMP", "Monitoring and traps", ("udp", "161-162")),
    _m("LDAP", "Directory", ("tcp", "389")),
    _m("LDAPS", "Directory over TLS", ("tcp", "636")),
    _m("SMB", "Windows file sharing", ("tcp", "139,445"), ("udp", "137-138")),
    _m("NFS", "Network file system (v3 and v4)", ("tcp", "111,2049"), ("udp", "111,2049")),
    _m("MySQL", "MySQL / MariaDB", ("tcp", "3306")),
    _m("PostgreSQL", "PostgreSQL", ("tcp", "5432")),
    _m("Redis", "Redis", ("tcp", "6379")),
    _m("MongoDB", "MongoDB", ("tcp", "27017")),
    _m("Kubernetes", "Kubernetes API server", ("tcp", "6443")),
    _m("WireGuard", "WireGuard VPN (default port)", ("udp", "51820")),
]

_BY_KEY = {m.name.lower(): m for m in MACROS}


def find_macro(name: str) -> Macro | None:
    """A macro by name, whatever the case (``ssh`` is ``SSH``)."""
    return _BY_KEY.get(name.strip().lower()) if isinstance(name, str) else None
