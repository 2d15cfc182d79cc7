"""Cloud-init NoCloud seed: checks on the fields, the three documents, and the ISO that carries them.

Pure: no libvirt here. YAML is written with PyYAML's ``safe_dump`` (never by string formatting), the
password is hashed with SHA-512 crypt before it is recorded anywhere, and the ISO is built in memory
with pycdlib (volume id ``cidata``, Joliet and Rock Ridge names, as cloud-init's NoCloud source reads).
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import ipaddress
import re
from typing import Any

import pycdlib
import yaml
from passlib.hash import sha512_crypt

SEED_VOLUME_ID = "cidata"
# 20x glibc's default of 5000 (what mkpasswd and most images use); ~50 ms once per request here, where
# passlib's 656000 would add ~0.3-2 s to every create.
HASH_ROUNDS = 100000
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+._:=~-]{0,127}")
# key type -> how many length-prefixed fields follow the type in the key data (RFC 4253, 5656, 8709, PROTOCOL.u2f)
_KEY_FIELDS = {
    "ssh-rsa": 2, "ssh-dss": 4, "ssh-ed25519": 1, "ssh-ed448": 1,
    "ecdsa-sha2-nistp256": 2, "ecdsa-sha2-nistp384": 2, "ecdsa-sha2-nistp521": 2,
    "sk-ssh-ed25519@openssh.com": 2, "sk-ecdsa-sha2-nistp256@openssh.com": 3,
}


class FieldError(ValueError):
    """A value the user must change: ``field`` is its path in the request (``source.cloud_init.user``)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


# ---------------------------------------------------------------------------------------------- checks


def check_hostname(value: str, field: str) -> str:
    """RFC 1123: dot-separated labels of letters, digits and '-', not starting or ending with '-'."""
    if not value or len(value) > 253:
        raise FieldError(field, f"hostname {value!r} must be 1 to 253 characters")
    labels = value.rstrip(".").split(".")
    bad = next((label for label in labels if not _HOST_LABEL.fullmatch(label)), None)
    if bad is not None:
        raise FieldError(field, f"hostname {value!r} is invalid: label {bad!r} must be 1-63 letters, digits or '-', "
                                "not starting or ending with '-' (RFC 1123)")
    return value.rstrip(".")


def check_user(value: str, field: str) -> str:
    if not _USER.fullmatch(value):
        raise FieldError(field, f"user name {value!r} is invalid: 1-32 of a-z, 0-9, '_' and '-', "
                                "starting with a letter or '_'")
    if value == "root":
        raise FieldError(field, "user name 'root' is not allowed: name a user to create (it gets sudo)")
    return value


def _ssh_fields(blob: bytes) -> list[bytes] | None:
    """The length-prefixed strings of SSH key data, or None when it does not split exactly into them."""
    fields, pos = [], 0
    while pos < len(blob):
        if pos + 4 > len(blob):
            return None
        size = int.from_bytes(blob[pos : pos + 4], "big")
        if pos + 4 + size > len(blob):
            return None
        fields.append(blob[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return fields


def check_ssh_key(value: str, field: str) -> str:
    """An OpenSSH public key line: type, key data whose own type and fields match, optional comment."""
    if "\n" in value.strip() or "\r" in value:
        raise FieldError(field, "one SSH key per list item")
    parts = value.strip().split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise FieldError(field, "not an SSH public key: expected a line like 'ssh-ed25519 AAAA… comment' "
                                "(types ssh-*, ecdsa-*, sk-*)")
    kind, blob = parts[0], parts[1]
    if kind not in _KEY_FIELDS:
        raise FieldError(field, f"SSH key type {kind!r} is not known (expected one of {', '.join(_KEY_FIELDS)})")
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise FieldError(field, f"SSH key of type {kind}: the key data is not valid base64") from None
    fields = _ssh_fields(raw)
    if not fields or fields[0] != kind.encode() or len(fields) != 1 + _KEY_FIELDS[kind]:
        raise FieldError(field, f"the key data is not a complete {kind} key (copied incompletely?)")
    return value.strip()


def check_network(net: dict[str, Any], field: str) -> dict[str, Any]:
    """DHCP, or a static address (CIDR) with an optional gateway inside it and DNS servers."""
    address, prefix = net.get("address"), net.get("prefix")
    gateway, dns = net.get("gateway"), list(net.get("dns") or [])
    for i, server in enumerate(dns):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise FieldError(f"{field}.dns[{i}]", f"DNS server {server!r} is not an IP address") from None
    if not address:
        if not net.get("dhcp", True):
            raise FieldError(f"{field}.address", "give a static address (CIDR, e.g. 10.0.0.5/24) or set dhcp")
        if gateway:
            raise FieldError(f"{field}.gateway", "a gateway needs a static address (DHCP brings its own)")
        return {"dhcp": True, "dns": dns}
    text = address if "/" in address or prefix is None else f"{address}/{prefix}"
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise FieldError(f"{field}.address", f"{text!r} is not a valid address in CIDR form (e.g. 10.0.0.5/24)") from None
    if "/" not in text:
        raise FieldError(f"{field}.address", f"{address!r} needs a prefix length (e.g. {address}/24)")
    if iface.ip == iface.network.network_address and iface.network.num_addresses > 2:
        raise FieldError(f"{field}.address", f"{text} is the network address of {iface.network}, not a host's")
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError:
            raise FieldError(f"{field}.gateway", f"gateway {gateway!r} is not an IP address") from None
        if gw not in iface.network:
            raise FieldError(f"{field}.gateway", f"gateway {gateway} is not inside {iface.network}")
        if gw == iface.ip:
            raise FieldError(f"{field}.gateway", f"gateway {gateway} is the VM's own address")
    return {"dhcp": False, "address": str(iface), "gateway": gateway, "dns": dns}


def hash_password(password: str) -> str:
    return sha512_crypt.using(rounds=HASH_ROUNDS).hash(password)


def parse_user_data(raw: Any, field: str) -> dict[str, Any]:
    """Raw user-data: a mapping, or "#cloud-config" YAML text holding one."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw) or {}
        except yaml.YAMLError as exc:
            raise FieldError(field, f"user_data is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise FieldError(field, "user_data must be a mapping of cloud-config keys (or #cloud-config YAML text)")
    return raw


def normalise(ci: dict[str, Any], vm_name: str, field: str) -> dict[str, Any]:
    """Check every field and return what the job records: the password replaced by its hash."""
    out: dict[str, Any] = {}
    out["hostname"] = check_hostname(ci.get("hostname") or vm_name, f"{field}.hostname")
    user = ci.get("user")
    out["user"] = check_user(user, f"{field}.user") if user else None
    password = ci.get("password")
    if password is not None:
        if not password:
            raise FieldError(f"{field}.password", "password must not be empty (leave it out for key-only login)")
        if not user:
            raise FieldError(f"{field}.user", "a password needs a user name to set it for")
        out["password_hash"] = hash_password(password)
    out["ssh_authorized_keys"] = [check_ssh_key(k, f"{field}.ssh_authorized_keys[{i}]")
                                  for i, k in enumerate(ci.get("ssh_authorized_keys") or [])]
    out["network"] = check_network(ci.get("network") or {}, f"{field}.network")
    for i, pkg in enumerate(ci.get("packages") or []):
        if not _PACKAGE.fullmatch(pkg):
            raise FieldError(f"{field}.packages[{i}]", f"package name {pkg!r} is invalid")
    out["packages"] = list(ci.get("packages") or [])
    out["runcmd"] = list(ci.get("runcmd") or [])
    out["user_data"] = parse_user_data(ci.get("user_data"), f"{field}.user_data")
    return out


# ------------------------------------------------------------------------------------------- documents


def merge(base: Any, extra: Any) -> Any:
    """Raw user-data over ours: mappings merge key by key, lists are appended, anything else replaces."""
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(extra, list):
        return base + copy.deepcopy(extra)
    return copy.deepcopy(extra)


def user_data(ci: dict[str, Any]) -> dict[str, Any]:
    """The #cloud-config document for normalised settings ``ci``."""
    hostname = ci["hostname"]
    doc: dict[str, Any] = {"hostname": hostname.split(".")[0]}
    if "." in hostname:
        doc["fqdn"] = hostname
    doc["manage_etc_hosts"] = True
    keys = ci.get("ssh_authorized_keys") or []
    if ci.get("user"):
        user: dict[str, Any] = {
            "name": ci["user"],
            "groups": ["sudo"],
            "shell": "/bin/bash",
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
        }
        if ci.get("password_hash"):
            user["lock_passwd"] = False
            user["passwd"] = ci["password_hash"]
        if keys:
            user["ssh_authorized_keys"] = keys
        doc["users"] = ["default", user]
    elif keys:
        doc["ssh_authorized_keys"] = keys
    if ci.get("password_hash"):
        doc["ssh_pwauth"] = True
    if ci.get("packages"):
        doc["package_update"] = True
        doc["packages"] = ci["packages"]
    if ci.get("runcmd"):
        doc["runcmd"] = ci["runcmd"]
    return merge(doc, ci.get("user_data") or {})


def user_data_text(ci: dict[str, Any]) -> str:
    return "#cloud-config\n" + yaml.safe_dump(user_data(ci), sort_keys=False, default_flow_style=False)


def meta_data_text(instance_id: str, hostname: str) -> str:
    return yaml.safe_dump({"instance-id": instance_id, "local-hostname": hostname}, sort_keys=False)


def network_config(net: dict[str, Any], macs: list[str]) -> dict[str, Any]:
    """Network config version 2: DHCP on every ethernet named e*, or the static address on the first NIC."""
    if net.get("dhcp", True):
        eth: dict[str, Any] = {"match": {"name": "e*"}, "dhcp4": True}
    else:
        iface = ipaddress.ip_interface(net["address"])
        match = {"macaddress": macs[0]} if macs else {"name": "e*"}
        eth = {"match": match, "addresses": [net["address"]]}
        if net.get("gateway"):
            default = "0.0.0.0/0" if iface.version == 4 else "::/0"
            eth["routes"] = [{"to": default, "via": net["gateway"]}]
    if net.get("dns"):
        eth["nameservers"] = {"addresses": list(net["dns"])}
    return {"version": 2, "ethernets": {"all" if net.get("dhcp", True) else "primary": eth}}


def network_config_text(net: dict[str, Any], macs: list[str]) -> str:
    return yaml.safe_dump(network_config(net, macs), sort_keys=False)


# ------------------------------------------------------------------------------------------------- ISO


SEED_FILES = (("meta-data", "/METADATA.;1"), ("user-data", "/USERDATA.;1"), ("network-config", "/NETWORKC.;1"))


def seed_iso(files: dict[str, str]) -> bytes:
    """An ISO 9660 image labelled ``cidata`` with ``files`` at its root under Rock Ridge and Joliet names."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=SEED_VOLUME_ID)
    for name, iso_path in SEED_FILES:
        if name not in files:
            continue
        data = files[name].encode()
        iso.add_fp(io.BytesIO(data), len(data), iso_path, rr_name=name, joliet_path=f"/{name}")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def seed_files(ci: dict[str, Any], instance_id: str, macs: list[str]) -> dict[str, str]:
    return {
        "meta-data": meta_data_text(instance_id, ci["hostname"].split(".")[0]),
        "user-data": user_data_text(ci),
        "network-config": network_config_text(ci.get("network") or {"dhcp": True}, macs),
    }
