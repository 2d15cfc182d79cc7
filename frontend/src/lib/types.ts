// Shapes returned by the Flint gateway (see shared/API.md).

export type VMState =
  | 'running'
  | 'paused'
  | 'shutoff'
  | 'crashed'
  | 'pmsuspended'
  | 'blocked'
  | 'shutdown'
  | 'nostate';

export const VM_STATES: VMState[] = [
  'running',
  'paused',
  'shutoff',
  'crashed',
  'pmsuspended',
  'blocked',
  'shutdown',
  'nostate',
];

export interface Disk {
  target: string;
  bus: string;
  device: string;
  pool: string | null;
  volume: string | null;
  path: string | null;
  capacity: number | null;
  allocation: number | null;
}

export interface Nic {
  mac: string;
  model: string | null;
  network: string | null;
  bridge: string | null;
  addresses: string[];
}

export interface Graphics {
  type: string;
  port: number | null;
  listen: string | null;
}

export interface VM {
  id: string;
  name: string;
  host: string;
  state: VMState;
  state_reason: string | null;
  vcpus: number;
  memory_mib: number;
  autostart: boolean;
  persistent: boolean;
  firmware: 'bios' | 'uefi';
  description: string | null;
  disks: Disk[];
  nics: Nic[];
  graphics: Graphics[];
}

export interface Page<T> {
  items: T[];
  total: number;
}

export interface Host {
  name: string;
  uri: string;
  state: 'up' | 'unreachable' | 'starting';
  hostname: string | null;
  cpu_model: string | null;
  cpus: number | null;
  memory_total_bytes: number | null;
  memory_free_bytes: number | null;
  libvirt_version: string | null;
  qemu_version: string | null;
  virt_type: string | null;
  uptime_s: number | null;
  vms_by_state: Partial<Record<VMState, number>>;
  cpu_percent: number | null;
  remote?: boolean;
  /** Added through the API (an SSH or test-driver host run by this Flint): removable on the Hosts page. */
  agentless?: boolean;
}

/** Pool document as carried by events (shape owned by the inventory service). */
export interface Pool {
  name: string;
  host: string;
  type?: string;
  state?: string;
  active?: boolean;
  capacity?: number;
  allocation?: number;
  available?: number;
  [key: string]: unknown;
}

export interface Network {
  name: string;
  host: string;
  [key: string]: unknown;
}

export interface Job {
  id: string;
  kind: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed';
  progress: number | null;
  step: string | null;
  message?: string | null;
  error: string | null;
  result?: unknown;
}

export interface MetricSample {
  t: number;
  cpu_percent: number | null;
  memory_used_bytes: number | null;
  memory_total_bytes?: number | null;
  disk_read_bps: number | null;
  disk_write_bps: number | null;
  net_rx_bps: number | null;
  net_tx_bps: number | null;
}

export interface MetricsSeries {
  interval_s: number;
  samples: MetricSample[];
}

export type VMAction = 'start' | 'shutdown' | 'reboot' | 'reset' | 'poweroff' | 'pause' | 'resume';

export interface User {
  username: string;
  role: 'admin' | 'operator' | 'viewer' | string;
}

export interface StoragePool {
  name: string;
  type: string;
  target: string | null;
  allocation: number;
  capacity: number;
  available: number;
  active: boolean;
}

export interface Usage {
  capacity: number;
  used: number;
  free: number;
}

export interface StorageGroup extends Usage {
  id: string;
  label: string;
  pools: StoragePool[];
}

export interface StorageHost extends Usage {
  host: string;
  groups: StorageGroup[];
}

export interface StorageSummary {
  overall: Usage;
  hosts: StorageHost[];
}

export interface Check {
  ok: boolean;
  detail?: string | null;
}

export interface HealthHost {
  name: string;
  uri: string;
  libvirt: Check & { version?: string | null };
  virt_type: string | null;
  services: Record<string, Check>;
}

export interface HealthDetails {
  status: string;
  nats: Check & { url?: string | null };
  hosts: HealthHost[];
}

/** One message on the events WebSocket. */
export interface EventMessage {
  seq: number;
  host: string;
  kind: string;
  id: string;
  type: string;
  data: unknown;
}

export interface Snapshot {
  vms?: VM[];
  hosts?: Host[];
  pools?: Pool[];
  networks?: Network[];
}
