// The create-VM wizard's form model: checks as you type (the same rules the provisioner applies, so the
// server rarely has to refuse), and the POST /api/v1/vms body built from it.

import { api } from './api';
import { checkInstall, installSource, newInstallForm, type InstallForm } from './netinstall-form';
import type { Job } from './types';

export type SourceKind = 'iso' | 'cloud_image' | 'network_install' | 'pxe';

/** Sources that bring no volume: the installer's files come from URLs, or the VM boots from the network. */
export const isInstallSource = (k: SourceKind) => k === 'network_install' || k === 'pxe';
export type DiskBus = 'virtio' | 'scsi' | 'sata' | 'ide';
export type NicModel = 'virtio' | 'e1000' | 'e1000e' | 'rtl8139';

export interface DiskForm {
  size_gib: string;
  pool: string;
  bus: DiskBus;
}

export interface NicForm {
  kind: 'network' | 'bridge';
  name: string;
  model: NicModel;
}

export interface CloudInitForm {
  enabled: boolean;
  hostname: string;
  user: string;
  password: string;
  ssh_keys: string; // one key per line
  mode: 'dhcp' | 'static';
  address: string;
  gateway: string;
  dns: string; // comma or space separated
  packages: string;
  runcmd: string; // one command per line
  user_data: string; // #cloud-config YAML merged last
}

export interface CreateForm {
  host: string;
  name: string;
  source: SourceKind;
  volume: string; // pool/volume
  install: InstallForm; // network_install and pxe
  vcpus: string;
  memory_mib: string;
  firmware: 'bios' | 'uefi';
  disks: DiskForm[];
  nics: NicForm[];
  cloud: CloudInitForm;
  direct_boot: boolean;
  kernel: string;
  initrd: string;
  cmdline: string;
  start: boolean;
  description: string;
}

export interface HostLimits {
  cpus: number | null;
  memory_mib: number | null;
}

export function newForm(host: string): CreateForm {
  return {
    host,
    name: '',
    source: 'iso',
    volume: '',
    install: newInstallForm(),
    vcpus: '1',
    memory_mib: '1024',
    firmware: 'bios',
    disks: [{ size_gib: '20', pool: '', bus: 'virtio' }],
    nics: [],
    cloud: {
      enabled: false,
      hostname: '',
      user: '',
      password: '',
      ssh_keys: '',
      mode: 'dhcp',
      address: '',
      gateway: '',
      dns: '',
      packages: '',
      runcmd: '',
      user_data: '',
    },
    direct_boot: false,
    kernel: '',
    initrd: '',
    cmdline: '',
    start: true,
    description: '',
  };
}

// ---- field checks ------------------------------------------------------------------------------

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const HOST_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const POOL_VOL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\/[^/\s]+$/;
const PACKAGE = /^[A-Za-z0-9][A-Za-z0-9+._:=~-]{0,127}$/;
const KEY_TYPES = [
  'ssh-rsa', 'ssh-dss', 'ssh-ed25519', 'ssh-ed448', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521', 'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com',
];

export function checkVmName(v: string): string {
  if (!v) return 'A name is required.';
  if (v.length > 63) return 'At most 63 characters.';
  if (!NAME.test(v)) return "Letters, digits, '_' and '-', starting with a letter or digit (no dots or spaces).";
  return '';
}

export function checkHostname(v: string): string {
  if (!v) return '';
  const name = v.replace(/\.$/, '');
  if (name.length > 253) return 'At most 253 characters.';
  const bad = name.split('.').find((l) => !HOST_LABEL.test(l));
  return bad === undefined ? '' : `“${bad}” is not a valid label: 1-63 letters, digits or '-', not starting or ending with '-' (RFC 1123).`;
}

export function checkUser(v: string): string {
  if (!v) return '';
  if (v === 'root') return "Name a user to create (it gets sudo); 'root' is not allowed.";
  return USER.test(v) ? '' : "1-32 of a-z, 0-9, '_' and '-', starting with a letter or '_'.";
}

function b64decode(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.length % 4 !== 0) return null;
  try {
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

export function checkSshKey(line: string): string {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2 || !/^(ssh-|ecdsa-|sk-)/.test(parts[0]))
    return 'Not an SSH public key: expected “ssh-ed25519 AAAA… comment” (types ssh-*, ecdsa-*, sk-*).';
  if (!KEY_TYPES.includes(parts[0])) return `Unknown key type “${parts[0]}”.`;
  const raw = b64decode(parts[1]);
  if (!raw) return 'The key data is not valid base64.';
  const len = raw.length >= 4 ? (raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3] : -1;
  const kind = new TextDecoder().decode(raw.slice(4, 4 + Math.max(len, 0)));
  if (kind !== parts[0]) return `The key data does not hold a ${parts[0]} key (copied incompletely?).`;
  return '';
}

export function sshKeys(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

function ipv4(s: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  return parts.every((p) => p <= 255) ? parts : null;
}

const v4int = (x: number[]) => ((x[0] << 24) | (x[1] << 16) | (x[2] << 8) | x[3]) >>> 0;
const v4mask = (prefix: number) => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

function ipv6(s: string): boolean {
  if (!/^[0-9A-Fa-f:]+$/.test(s) || (s.match(/::/g) ?? []).length > 1) return false;
  const groups = s.split(':');
  return s.includes('::') ? groups.length <= 8 : groups.length === 8;
}

export function isIp(s: string): boolean {
  return ipv4(s) !== null || ipv6(s);
}

/** A static address: "10.0.0.5/24"; '' when fine. */
export function checkCidr(v: string): string {
  if (!v) return 'A static address is needed (e.g. 10.0.0.5/24), or choose DHCP.';
  const [addr, prefix, ...rest] = v.split('/');
  if (prefix === undefined) return `Add the prefix length, e.g. ${addr}/24.`;
  const p = Number(prefix);
  if (rest.length || !/^\d+$/.test(prefix)) return 'Use ADDRESS/PREFIX, e.g. 10.0.0.5/24.';
  const v4 = ipv4(addr);
  if (v4) {
    if (p > 32) return 'An IPv4 prefix is 0 to 32.';
    if (p < 31 && (v4int(v4) & ~v4mask(p)) >>> 0 === 0) return `${v} is the network address, not a host's.`;
    return '';
  }
  if (ipv6(addr)) return p > 128 ? 'An IPv6 prefix is 0 to 128.' : '';
  return `“${addr}” is not an IP address.`;
}

/** The gateway must be inside the static address's network. */
export function checkGateway(gw: string, cidr: string): string {
  if (!gw) return '';
  if (!isIp(gw)) return `“${gw}” is not an IP address.`;
  const [addr, prefix] = cidr.split('/');
  const a = ipv4(addr);
  const g = ipv4(gw);
  if (a && g && prefix !== undefined) {
    const mask = v4mask(Number(prefix));
    if (((v4int(a) & mask) >>> 0) !== ((v4int(g) & mask) >>> 0)) return `The gateway is not inside ${cidr}.`;
    if (addr === gw) return "The gateway is the VM's own address.";
  } else if (!!a !== !!g) {
    return 'The gateway and the address are not of the same IP version.';
  }
  return '';
}

export function splitList(v: string): string[] {
  return v
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

export type Errors = Record<string, string>;

/** Every problem of the form, keyed by the request field it belongs to (the server's names). */
export function validate(f: CreateForm, limits: HostLimits): Errors {
  const e: Errors = {};
  const set = (k: string, msg: string) => {
    if (msg && !e[k]) e[k] = msg;
  };
  set('host', f.host ? '' : 'Choose a host.');
  set('name', checkVmName(f.name));
  if (f.source === 'network_install' && !f.start) set('start', 'A network install runs when the VM is created: keep “Start the VM” on.');
  if (isInstallSource(f.source)) Object.entries(checkInstall(f.source, f.install)).forEach(([k, m]) => set(k, m));
  else set('source.volume', !f.volume ? `Choose the ${f.source === 'iso' ? 'ISO' : 'cloud image'} volume.` : POOL_VOL.test(f.volume) ? '' : 'Name it as pool/volume.');
  const vcpus = Number(f.vcpus);
  if (!Number.isInteger(vcpus) || vcpus < 1) set('vcpus', 'At least 1 vCPU.');
  else if (limits.cpus && vcpus > limits.cpus) set('vcpus', `This host has ${limits.cpus} CPUs.`);
  const mem = Number(f.memory_mib);
  if (!Number.isInteger(mem) || mem < 64) set('memory_mib', 'At least 64 MiB.');
  else if (limits.memory_mib && mem > limits.memory_mib) set('memory_mib', `This host has ${limits.memory_mib} MiB.`);
  f.disks.forEach((d, i) => {
    const size = Number(d.size_gib);
    if (!(size > 0)) set(`disks[${i}].size_gib`, 'A size in GiB above 0.');
    if (!d.pool) set(`disks[${i}].pool`, 'Choose a pool.');
  });
  const ideCount = f.disks.filter((d) => d.bus === 'ide').length + (f.source === 'iso' ? 1 : 0) + (f.cloud.enabled ? 1 : 0);
  if (f.disks.some((d) => d.bus === 'ide') && ideCount > 4) set('disks', 'At most 4 IDE devices (disks and CD-ROMs).');
  f.nics.forEach((n, i) => {
    if (!n.name) set(`nics[${i}].${n.kind}`, `Choose a ${n.kind}.`);
  });
  if (f.cloud.enabled) {
    const c = f.cloud;
    const p = 'source.cloud_init';
    set(`${p}.hostname`, checkHostname(c.hostname));
    set(`${p}.user`, checkUser(c.user));
    if (c.password && !c.user) set(`${p}.user`, 'A password needs a user name to set it for.');
    sshKeys(c.ssh_keys).forEach((k, i) => set(`${p}.ssh_authorized_keys[${i}]`, checkSshKey(k)));
    if (c.mode === 'static') {
      set(`${p}.network.address`, checkCidr(c.address));
      set(`${p}.network.gateway`, checkGateway(c.gateway, c.address));
      if (f.nics.length === 0) set(`${p}.network`, 'A static address needs a NIC: add one under Network.');
    }
    splitList(c.dns).forEach((d, i) => set(`${p}.network.dns[${i}]`, isIp(d) ? '' : `“${d}” is not an IP address.`));
    splitList(c.packages).forEach((pk, i) => set(`${p}.packages[${i}]`, PACKAGE.test(pk) ? '' : `“${pk}” is not a package name.`));
    if (c.user_data.trim() && /^\s*-/.test(c.user_data.replace(/^#cloud-config\s*/, '')))
      set(`${p}.user_data`, 'User data must be a mapping of cloud-config keys, not a list.');
  }
  if (f.direct_boot) {
    set('direct_boot.kernel', !f.kernel ? 'Choose the kernel volume (pool/volume).' : POOL_VOL.test(f.kernel) ? '' : 'Name it as pool/volume.');
    if (f.initrd && !POOL_VOL.test(f.initrd)) set('direct_boot.initrd', 'Name it as pool/volume.');
  }
  return e;
}

// ---- the request -------------------------------------------------------------------------------

export function buildRequest(f: CreateForm): Record<string, unknown> {
  const source: Record<string, unknown> = isInstallSource(f.source)
    ? installSource(f.source, f.install)
    : { kind: f.source, volume: f.volume.trim() };
  if (f.cloud.enabled) {
    const c = f.cloud;
    const ci: Record<string, unknown> = {};
    if (c.hostname) ci.hostname = c.hostname.trim();
    if (c.user) ci.user = c.user.trim();
    if (c.password) ci.password = c.password;
    const keys = sshKeys(c.ssh_keys);
    if (keys.length) ci.ssh_authorized_keys = keys;
    const dns = splitList(c.dns);
    if (c.mode === 'static') ci.network = { dhcp: false, address: c.address.trim(), gateway: c.gateway.trim() || null, dns };
    else if (dns.length) ci.network = { dhcp: true, dns };
    const pkgs = splitList(c.packages);
    if (pkgs.length) ci.packages = pkgs;
    const cmds = c.runcmd.split('\n').map((l) => l.trim()).filter(Boolean);
    if (cmds.length) ci.runcmd = cmds;
    if (c.user_data.trim()) ci.user_data = c.user_data;
    source.cloud_init = ci;
  }
  const body: Record<string, unknown> = {
    host: f.host,
    name: f.name.trim(),
    vcpus: Number(f.vcpus),
    memory_mib: Number(f.memory_mib),
    firmware: f.firmware,
    source,
    disks: f.disks.map((d) => ({ size_gib: Number(d.size_gib), pool: d.pool, bus: d.bus })),
    nics: f.nics.map((n) => ({ [n.kind]: n.name, model: n.model })),
    start: f.start,
  };
  if (f.description.trim()) body.description = f.description.trim();
  if (f.direct_boot) body.direct_boot = { kernel: f.kernel.trim(), initrd: f.initrd.trim() || null, cmdline: f.cmdline };
  return body;
}

export const createVM = (body: Record<string, unknown>) => api.post<Job>('/vms', body);

export interface VolumeEntry {
  name: string;
  pool: string;
  capacity?: number;
  format?: string | null;
}

/** A pool's volumes, or null when this gateway cannot list them (then the user types pool/volume). */
export async function poolVolumes(host: string, pool: string): Promise<VolumeEntry[] | null> {
  try {
    const vols = await api.get<VolumeEntry[]>(`/hosts/${encodeURIComponent(host)}/pools/${encodeURIComponent(pool)}/volumes`);
    return Array.isArray(vols) ? vols : null;
  } catch {
    return null;
  }
}
