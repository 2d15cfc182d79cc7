"""Network install and PXE for vm.create.

Network install, as virt-install --location does it, but for any host (remote ones too):
- before anything is made, find the kernel and initrd: from the install tree's ``.treeinfo`` (configparser:
  ``[images-<arch>] kernel/initrd``, ``[checksums]``) or the explicit URLs, and make sure they answer;
- step "installer files": download both with httpx (progress, sha256 checked against the tree's
  checksums) straight into volumes of a file pool through libvirt streams;
- step "start": the persistent definition (defined by the "define" step) boots from disk; the first run is
  a transient install domain made from it with ``<kernel>``, ``<initrd>``, ``<cmdline>`` (the user's kernel
  arguments) and ``on_reboot=destroy``, started with createXML over the inactive persistent domain, so the
  installer's reboot ends the install run and the next start boots the installed disk;
- step "installer cleanup": QEMU has read both files at start, so their volumes are deleted.

PXE: the NIC on the chosen network or bridge is first in the boot order (per-device ``<boot order>``), the
disks follow; a warning says when nothing Flint can see will answer the guest's PXE request.
"""

from __future__ import annotations

import configparser
import hashlib
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin

import httpx
import libvirt
import structlog

from flint.contracts.common import ServiceError
from flint.virt.connection import libvirt_error
from flint.xml import Capabilities, Domain, Network, StoragePool, StorageVolume
from services.provisioner.jobs import JobRun
from services.provisioner.network_spec import pxe_info
from services.provisioner.volume_jobs import check_url, ensure_library
from services.provisioner.volumes import write_stream

log = structlog.get_logger()
TREEINFO = (".treeinfo", "treeinfo")
MAX_BOOT_FILE = 2 * 1024**3
CMDLINE_MAX = 4096
RED_HAT_FAMILY = re.compile(r"fedora|red hat|rhel|centos|rocky|alma|oracle|scientific", re.I)
PROBE_TIMEOUT = httpx.Timeout(15.0)
DOWNLOAD_TIMEOUT = httpx.Timeout(30.0, read=120.0)
FILE_POOLS = {"dir", "fs", "netfs", "gluster"}
IMAGE_POOL = "flint-images"
INACTIVE = libvirt.VIR_NETWORK_XML_INACTIVE


def fail(code: int, field: str, message: str) -> ServiceError:
    return ServiceError(code, f"{field}: {message}", field)


# ---- the install tree ------------------------------------------------------------------------------------

def parse_treeinfo(text: str, arch: str) -> dict[str, Any]:
    """The kernel and initrd paths (relative to the tree) for ``arch``, the distribution family and the
    sha256 sums the tree lists. ValueError says what is missing."""
    cfg = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cfg.read_string(text)
    except configparser.Error as exc:
        raise ValueError(f"it is not a valid treeinfo file ({exc.__class__.__name__})") from None
    section = f"images-{arch}"
    if not cfg.has_section(section):
        offered = sorted(s.removeprefix("images-") for s in cfg.sections() if s.startswith("images-"))
        raise ValueError(f"it has no images for {arch}" + (f" (only for {', '.join(offered)})" if offered else ""))
    kernel = cfg.get(section, "kernel", fallback=None)
    if not kernel:
        raise ValueError(f"its [{section}] section names no kernel")
    family = (cfg.get("release", "name", fallback=None) or cfg.get("general", "family", fallback="")).strip()
    sums = {}
    if cfg.has_section("checksums"):
        for path, value in cfg.items("checksums"):
            algo, _, digest = value.partition(":")
            if algo.strip().lower() == "sha256" and re.fullmatch(r"[0-9a-fA-F]{64}", digest.strip()):
                sums[path.strip()] = digest.strip().lower()
    initrd = cfg.get(section, "initrd", fallback=None) or None
    return {"kernel": kernel.strip(), "initrd": initrd.strip() if initrd else None, "family": family,
            "sha256": {"kernel": sums.get(kernel.strip()), "initrd": sums.get(initrd.strip()) if initrd else None}}


def _check_url(url: str, field: str) -> str:
    try:  # one rule for every download: http/https, no credentials in the URL
        return check_url(url)
    except ServiceError as exc:
        raise fail(422, field, exc.message.removeprefix("url: ")) from None


def _probe(client: httpx.Client, url: str, field: str) -> None:
    """The file answers 200 (its body is not read)."""
    try:
        with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as resp:
            if resp.status_code != 200:
                raise fail(422, field, f"{url} answered {resp.status_code} {resp.reason_phrase}")
    except httpx.HTTPError as exc:
        raise fail(422, field, f"cannot fetch {url}: {exc.__class__.__name__}: {exc}") from None


def find_boot_files(location: str, kernel: str | None, initrd: str | None, arch: str) -> dict[str, Any]:
    """BLOCKS (HTTP). The kernel and initrd URLs, their expected sha256 (when the tree lists them) and the
    tree's family; explicit URLs win over the tree's."""
    found: dict[str, Any] = {"kernel_url": None, "initrd_url": None, "sha256": {}, "family": ""}
    base = location.rstrip("/") + "/" if location else ""
    if base:
        _check_url(base, "source.location")
    with httpx.Client(follow_redirects=True, timeout=PROBE_TIMEOUT, max_redirects=5) as client:
        if not kernel:
            if not base:
                raise fail(422, "source.location", "give the install tree's URL, or kernel (and initrd) URLs")
            tree, tried = None, []
            for name in TREEINFO:
                url = urljoin(base, name)
                try:
                    resp = client.get(url)
                except httpx.HTTPError as exc:
                    raise fail(422, "source.location", f"cannot reach {url}: {exc.__class__.__name__}: {exc}") from None
                if resp.status_code == 200:
                    tree = (url, resp.text)
                    break
                tried.append(f"{url} answered {resp.status_code}")
            if tree is None:
                raise fail(422, "source.location", f"no install tree there ({'; '.join(tried)}): give the tree's root "
                                                   "(where .treeinfo is), or the kernel and initrd URLs")
            try:
                info = parse_treeinfo(tree[1], arch)
            except ValueError as exc:
                raise fail(422, "source.location", f"{tree[0]}: {exc}") from None
            found.update(kernel_url=urljoin(base, info["kernel"]), family=info["family"], sha256=info["sha256"])
            if info["initrd"] and not initrd:
                found["initrd_url"] = urljoin(base, info["initrd"])
        else:
            found["kernel_url"] = _check_url(kernel, "source.kernel")
        if initrd:
            found["initrd_url"] = _check_url(initrd, "source.initrd")
            found["sha256"].pop("initrd", None)
        _probe(client, found["kernel_url"], "source.kernel" if kernel else "source.location")
        if found["initrd_url"]:
            _probe(client, found["initrd_url"], "source.initrd" if initrd else "source.location")
    return found


def install_cmdline(kernel_args: str, location: str, family: str) -> str:
    """The user's kernel arguments; for Red Hat family trees also inst.repo=<location> unless given (the
    installer would otherwise look for its repository on a CD)."""
    if len(kernel_args) > CMDLINE_MAX or any(ord(c) < 32 for c in kernel_args):
        raise fail(422, "source.kernel_args", f"at most {CMDLINE_MAX} characters on one line")
    args = kernel_args.strip()
    if location and RED_HAT_FAMILY.search(family) and not re.search(r"(^|\s)(inst\.)?(repo|stage2)=", args):
        args = f"{args} inst.repo={location}".strip()
    return args


def host_arch(conn: libvirt.virConnect, virt_type: str) -> str:
    try:
        return Capabilities.parse(conn.getCapabilities()).pick_guest(virt_type=virt_type).arch or "x86_64"
    except (libvirt.libvirtError, LookupError):
        return "x86_64"


def _pool_type(conn: libvirt.virConnect, name: str) -> str | None:
    try:
        return StoragePool.parse(conn.storagePoolLookupByName(name).XMLDesc(0)).type
    except libvirt.libvirtError:
        return None


def plan_install(conn: libvirt.virConnect, virt_type: str, source: Any, start: bool, disks: list[dict],
                 vm_uuid: str, base: str) -> dict[str, Any]:
    """BLOCKS. What the install steps need, recorded with the job: URLs, sums, the pool and volume names
    for the two files (a file pool: the first disk's, else the image library), the kernel command line."""
    if not start:
        raise fail(422, "start", "a network install runs when the VM is created: start must be true")
    files = find_boot_files(source.location, source.kernel, source.initrd, host_arch(conn, virt_type))
    pool = next((d["pool"] for d in disks if _pool_type(conn, d["pool"]) in FILE_POOLS), IMAGE_POOL)
    tag = vm_uuid.split("-")[0]
    return {
        "location": source.location,
        "pool": pool,
        "kernel": {"url": files["kernel_url"], "volume": f"{base}-vmlinuz-{tag}", "sha256": files["sha256"].get("kernel")},
        "initrd": ({"url": files["initrd_url"], "volume": f"{base}-initrd-{tag}", "sha256": files["sha256"].get("initrd")}
                   if files["initrd_url"] else None),
        "cmdline": install_cmdline(source.kernel_args, source.location, files["family"]),
    }


# ---- steps -----------------------------------------------------------------------------------------------

def _files(ni: dict) -> list[tuple[str, dict]]:
    return [(k, ni[k]) for k in ("kernel", "initrd") if ni.get(k)]


def _step_span(run: JobRun, step: str) -> tuple[float, float]:
    steps = run.engine.kinds[run.job.kind].steps
    total = sum(s.weight for s in steps) or 1.0
    before = 0.0
    for s in steps:
        if s.name == step:
            return 100 * before / total, 100 * (before + s.weight) / total
        before += s.weight
    return run.job.progress, run.job.progress


def _create_volume(conn: libvirt.virConnect, pool: str, name: str) -> None:
    p = conn.storagePoolLookupByName(pool)
    try:
        p.storageVolLookupByName(name)
        return
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
            raise
    p.createXML(StorageVolume(name=name, capacity=1, allocation=0, format="raw").to_xml(), 0)


def _delete_volume(conn: libvirt.virConnect, pool: str, name: str) -> bool:
    try:
        conn.storagePoolLookupByName(pool).storageVolLookupByName(name).delete(0)
        return True
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_STORAGE_POOL):
            return False
        raise libvirt_error(exc, f"delete {pool}/{name}") from exc


async def fetch_files(run: JobRun) -> None:
    """Step "installer files": each file downloaded straight into its volume, once."""
    ni = run.params.get("netinstall")
    if not ni:
        return
    if ni["pool"] == IMAGE_POOL:
        await ensure_library(run.ctx)
    state: dict[str, str] = run.data.setdefault("installer_files", {})
    lo, hi = _step_span(run, "installer files")
    files = _files(ni)
    virt = run.ctx.virt
    for i, (what, f) in enumerate(files):
        if state.get(what) == "done":
            continue
        if state.get(what) == "created":  # an attempt died mid-download: start the file over
            await virt.call(_delete_volume, virt.conn, ni["pool"], f["volume"])
        state[what] = "created"
        await run.save()
        try:
            await virt.call(_create_volume, virt.conn, ni["pool"], f["volume"])
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"create {ni['pool']}/{f['volume']} for the {what}") from exc
        share_lo = lo + (hi - lo) * i / len(files)
        share_hi = lo + (hi - lo) * (i + 1) / len(files)
        digest = hashlib.sha256()
        try:
            async with httpx.AsyncClient(follow_redirects=True, timeout=DOWNLOAD_TIMEOUT, max_redirects=5) as client:
                async with client.stream("GET", f["url"], headers={"Accept-Encoding": "identity"}) as resp:
                    if resp.status_code != 200:
                        raise ServiceError(502, f"downloading the {what}: {f['url']} answered {resp.status_code} "
                                                f"{resp.reason_phrase}")
                    length = int(resp.headers.get("content-length") or 0) or None
                    if length and length > MAX_BOOT_FILE:
                        raise ServiceError(422, f"the {what} at {f['url']} is {length} bytes: too big for a kernel "
                                                "or initrd")

                    async def report(done: int, what=what, url=f["url"], length=length,
                                     share_lo=share_lo, share_hi=share_hi) -> None:
                        frac = min(done / length, 1.0) if length else 0.0
                        size = f" of {length / 1024**2:.1f} MiB" if length else ""
                        await run.progress(share_lo + (share_hi - share_lo) * frac,
                                           f"downloading the {what} {url}: {done / 1024**2:.1f} MiB{size}")

                    async def hashed(resp=resp, digest=digest, what=what) -> AsyncIterator[bytes]:
                        seen = 0
                        async for data in resp.aiter_raw():
                            seen += len(data)
                            if seen > MAX_BOOT_FILE:
                                raise ServiceError(422, f"the {what} is larger than {MAX_BOOT_FILE} bytes")
                            digest.update(data)
                            yield data

                    written = await write_stream(virt, ni["pool"], f["volume"], 0, hashed(), report)
        except httpx.HTTPError as exc:
            raise ServiceError(502, f"downloading the {what} {f['url']} failed: {exc.__class__.__name__}: {exc}") from exc
        if length is not None and written != length:
            raise ServiceError(502, f"{f['url']} sent {written} bytes, not the {length} it announced")
        if f.get("sha256") and digest.hexdigest() != f["sha256"]:
            raise ServiceError(422, f"the {what} {f['url']} has sha256 {digest.hexdigest()}, not the "
                                    f"{f['sha256']} its install tree lists")
        state[what] = "done"
        await run.progress(share_hi, f"{what} downloaded ({written / 1024**2:.1f} MiB, sha256 {digest.hexdigest()[:12]}…)")
        log.info("installer file ready", what=what, url=f["url"], bytes=written, sha256=digest.hexdigest())


async def remove_files(run: JobRun) -> None:
    """Undo of "installer files", and step "installer cleanup" once the install domain runs."""
    ni = run.params.get("netinstall")
    if not ni:
        return
    state: dict[str, str] = run.data.setdefault("installer_files", {})
    for what, f in _files(ni):
        if what in state:
            if await run.ctx.virt.call(_delete_volume, run.ctx.virt.conn, ni["pool"], f["volume"]):
                log.info("installer file removed", volume=f"{ni['pool']}/{f['volume']}")
            del state[what]
            await run.save()


async def cleanup_files(run: JobRun) -> None:
    """Step "installer cleanup": the install runs already, so a file that cannot be deleted is reported
    in the job's result, never a reason to roll the VM back."""
    try:
        await remove_files(run)
    except Exception as exc:  # noqa: BLE001 - reported, the VM stays
        left = [f"{run.params['netinstall']['pool']}/{f['volume']}" for _, f in _files(run.params["netinstall"])]
        log.warning("installer files not removed", error=str(exc), volumes=left)
        run.job.result.setdefault("warnings", []).append(f"the installer files were not removed ({exc}): "
                                                         f"delete {', '.join(left)} by hand")


def install_domain_xml(final_xml: str, kernel: str, initrd: str | None, cmdline: str) -> str:
    """The install run: the final definition booting the installer's kernel, destroyed when it reboots."""
    dom = Domain.parse(final_xml)
    dom.boot_devices = []
    for dev in [*dom.disks, *dom.interfaces]:
        dev.boot_order = None
    dom.kernel, dom.initrd, dom.cmdline = kernel, initrd, cmdline or None
    dom.on_reboot = "destroy"
    return dom.to_xml()


async def start_install(run: JobRun) -> None:
    """Step "start" of a network install: the transient install run over the inactive persistent domain."""
    p, ni = run.params, run.params["netinstall"]

    def blocking() -> None:
        conn = run.ctx.virt.conn
        try:
            dom = conn.lookupByUUIDString(p["uuid"])
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"VM {p['name']!r}") from exc
        if dom.isActive():
            return  # started by an earlier attempt
        pool = conn.storagePoolLookupByName(ni["pool"])
        kernel = pool.storageVolLookupByName(ni["kernel"]["volume"]).path()
        initrd = pool.storageVolLookupByName(ni["initrd"]["volume"]).path() if ni.get("initrd") else None
        xml = install_domain_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE),
                                 kernel, initrd, ni["cmdline"])
        try:
            conn.createXML(xml, 0)
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"start the install of {p['name']!r}") from exc

    await run.progress(run.job.progress, f"booting the installer of {p['name']} ({ni['cmdline'] or 'no kernel arguments'})")
    await run.ctx.virt.call(blocking)
    run.job.result["install"] = {"kernel": ni["kernel"]["url"], "cmdline": ni["cmdline"]}


# ---- PXE -------------------------------------------------------------------------------------------------

def pxe_warning(conn: libvirt.virConnect, network: str | None, bridge: str | None) -> str | None:
    """Why a PXE boot on this network or bridge may find nobody to answer, or None when libvirt serves it."""
    if bridge:
        return (f"host bridge {bridge}: PXE needs a DHCP and PXE server on that LAN, which Flint cannot see "
                "from here")
    try:
        net = Network.parse(conn.networkLookupByName(network).XMLDesc(INACTIVE))
    except libvirt.libvirtError:
        return None
    info = pxe_info(net)
    return None if info.ready else info.note


def plan_pxe(conn: libvirt.virConnect, source: Any, nics: list[dict], new_mac: str) -> tuple[list[dict], str, list[str]]:
    """The NIC to boot from (one on the source's network or bridge, added first when the request has none),
    its MAC, and the warnings for the job."""
    if source.network and source.bridge:
        raise fail(422, "source", "give one of network or bridge to boot from, not both")
    if not source.network and not source.bridge:
        if not nics:
            raise fail(422, "source.network", "name the network (or bridge) to boot from, or add a NIC")
        boot = nics[0]
    else:
        boot = next((n for n in nics if (source.network and n["network"] == source.network)
                     or (source.bridge and n["bridge"] == source.bridge)), None)
        if boot is None:
            boot = {"network": source.network, "bridge": source.bridge, "model": "virtio", "mac": new_mac}
            nics = [boot, *nics]
    warning = pxe_warning(conn, boot["network"], boot["bridge"])
    return nics, boot["mac"], [f"PXE may find no server: {warning}"] if warning else []


def pxe_first(domain_xml: str, mac: str) -> str:
    """Per-device boot order: the PXE NIC first, then the disks, then CD-ROMs."""
    dom = Domain.parse(domain_xml)
    dom.boot_devices = []
    order = 1
    for iface in dom.interfaces:
        if (iface.mac or "").lower() == mac.lower():
            iface.boot_order = order
            order += 1
    for device in ("disk", "cdrom"):
        for disk in dom.disks:
            if disk.device == device:
                disk.boot_order = order
                order += 1
    return dom.to_xml()
