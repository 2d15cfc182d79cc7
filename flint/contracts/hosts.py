"""Agentless hosts: what POST /api/v1/hosts takes, and the registration record kept in KV flint-hosts
under `agentless.<name>` (no secrets: the key and known_hosts live in files under the data dir)."""

from __future__ import annotations

import msgspec


class HostAdd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    uri: str
    ssh_private_key: str | None = None
    known_hosts: str | None = None


class HostRegistration(msgspec.Struct, kw_only=True):
    name: str
    uri: str  # as the user wrote it: qemu+ssh://user@host:port/system or test:///file.xml
    kind: str = "ssh"  # ssh | test
    host_keys: list[str] = []  # fingerprints of the host keys known_hosts trusts ("ssh-ed25519 SHA256:…")
    key_fingerprint: str = ""  # the client key's public fingerprint
    created_at: float = 0.0
    created_by: str = ""
