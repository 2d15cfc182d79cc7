// Live inventory kept current by the events WebSocket (see events.ts): VMs by id, hosts by name,
// pools and networks by "host/name", recent jobs. Documents are replaced in place; nothing reloads.

import { SvelteMap } from 'svelte/reactivity';
import { getVM } from './api';
import type { EventMessage, Host, Job, MetricSample, Network, Pool, Snapshot, VM } from './types';

export type ConnectionState = 'idle' | 'connecting' | 'live' | 'reconnecting' | 'offline';

type MetricsListener = (vmId: string, sample: MetricSample) => void;
type ChangeListener = (msg: EventMessage) => void;

const MAX_JOBS = 200;

function keyOf(host: string, name: string): string {
  return `${host}/${name}`;
}

export class LiveStore {
  vms = new SvelteMap<string, VM>();
  hosts = new SvelteMap<string, Host>();
  pools = new SvelteMap<string, Pool>();
  networks = new SvelteMap<string, Network>();
  jobs = new SvelteMap<string, Job>();

  connection = $state<ConnectionState>('idle');
  /** True once a snapshot (or the REST fallback) has filled the store. */
  loaded = $state(false);
  /** True once a WebSocket snapshot has arrived (REST seeding must not overwrite it). */
  snapshotSeen = $state(false);
  lastSeq = $state<number | null>(null);

  vmList = $derived(
    [...this.vms.values()].sort((a, b) => a.name.localeCompare(b.name) || a.host.localeCompare(b.host)),
  );
  hostList = $derived([...this.hosts.values()].sort((a, b) => a.name.localeCompare(b.name)));
  /** Where forms point by default: the first reachable host (a host that went away is not a good default). */
  defaultHost = $derived(
    (this.hostList.find((h) => h.state === 'up') ?? this.hostList[0])?.name ?? 'local',
  );

  #metrics = new Set<MetricsListener>();
  #changes = new Set<ChangeListener>();

  /** Subscribe to "metrics" samples; returns the unsubscribe function. */
  onMetrics(fn: MetricsListener): () => void {
    this.#metrics.add(fn);
    return () => this.#metrics.delete(fn);
  }

  /** Subscribe to every applied change (pool, host, ...); returns the unsubscribe function. */
  onChange(fn: ChangeListener): () => void {
    this.#changes.add(fn);
    return () => this.#changes.delete(fn);
  }

  reset(): void {
    this.vms.clear();
    this.hosts.clear();
    this.pools.clear();
    this.networks.clear();
    this.jobs.clear();
    this.loaded = false;
    this.snapshotSeen = false;
    this.lastSeq = null;
    this.connection = 'idle';
  }

  /** Fill from REST answers while no snapshot has arrived yet (the WebSocket may be slow or blocked). */
  seed(vms: VM[] | null, hosts: Host[] | null): void {
    if (this.snapshotSeen) return;
    if (vms) {
      this.vms.clear();
      for (const vm of vms) this.vms.set(vm.id, vm);
    }
    if (hosts) {
      this.hosts.clear();
      for (const h of hosts) this.hosts.set(h.name, h);
    }
    this.loaded = true;
  }

  applySnapshot(snap: Snapshot): void {
    replaceAll(this.vms, snap.vms ?? [], (v) => v.id);
    replaceAll(this.hosts, snap.hosts ?? [], (h) => h.name);
    replaceAll(this.pools, snap.pools ?? [], (p) => keyOf(p.host ?? '', p.name));
    replaceAll(this.networks, snap.networks ?? [], (n) => keyOf(n.host ?? '', n.name));
    this.snapshotSeen = true;
    this.loaded = true;
  }

  /** Apply one event message. Returns false for a duplicate (seq already seen). */
  apply(msg: EventMessage): boolean {
    const hasSeq = typeof msg.seq === 'number' && msg.seq > 0;
    if (msg.kind === 'snapshot') {
      this.applySnapshot((msg.data ?? {}) as Snapshot);
      if (hasSeq) this.lastSeq = msg.seq;
      this.#emit(msg);
      return true;
    }
    if (hasSeq && this.lastSeq !== null && msg.seq <= this.lastSeq) return false;
    if (hasSeq) this.lastSeq = msg.seq;

    const deleted = msg.type === 'deleted' || msg.data === null || msg.data === undefined;
    switch (msg.kind) {
      case 'domain': {
        // One libvirtd under two host names (an SSH alias of the same machine) reports a VM twice: like
        // the gateway's view, keep it with the host that showed it first; when that host forgets it, ask
        // the gateway whether another host still has it.
        const shown = this.vms.get(msg.id);
        if (shown && msg.host && shown.host && shown.host !== msg.host) break;
        if (deleted) {
          this.vms.delete(msg.id);
          if (shown) void this.#refetchVm(msg.id, msg.host);
        } else {
          const vm = msg.data as VM;
          const id = vm.id || msg.id;
          this.vms.set(id, { ...vm, id, host: vm.host || msg.host });
        }
        break;
      }
      case 'host': {
        const name = (msg.data as Host | null)?.name || msg.id || msg.host;
        if (deleted) this.hosts.delete(name);
        else this.hosts.set(name, { ...(msg.data as Host), name });
        break;
      }
      case 'pool':
        applyNamed(this.pools, msg, deleted);
        break;
      case 'network':
        applyNamed(this.networks, msg, deleted);
        break;
      case 'job': {
        const job = msg.data as Job | null;
        if (job) {
          const id = job.id || msg.id;
          this.jobs.set(id, { ...job, id });
          if (this.jobs.size > MAX_JOBS) {
            const first = this.jobs.keys().next().value;
            if (first !== undefined) this.jobs.delete(first);
          }
        }
        break;
      }
      case 'metrics': {
        if (msg.data) for (const fn of this.#metrics) fn(msg.id, msg.data as MetricSample);
        return true;
      }
      default:
        break;
    }
    this.#emit(msg);
    return true;
  }

  async #refetchVm(id: string, forgottenBy: string): Promise<void> {
    try {
      const vm = await getVM(id);
      // The gateway may not have applied the deletion yet: only another host's copy counts.
      if (vm.host !== forgottenBy && !this.vms.has(id)) this.vms.set(id, vm);
    } catch {
      // 404: no host has it any more, which is what the store already shows
    }
  }

  #emit(msg: EventMessage): void {
    for (const fn of this.#changes) {
      try {
        fn(msg);
      } catch (e) {
        console.error('event listener failed', e);
      }
    }
  }
}

function replaceAll<T>(map: SvelteMap<string, T>, items: T[], key: (t: T) => string): void {
  const keep = new Set<string>();
  for (const item of items) {
    const k = key(item);
    keep.add(k);
    map.set(k, item);
  }
  for (const k of [...map.keys()]) if (!keep.has(k)) map.delete(k);
}

function applyNamed<T extends { name: string; host: string }>(
  map: SvelteMap<string, T>,
  msg: EventMessage,
  deleted: boolean,
): void {
  const doc = msg.data as (T & { uuid?: string }) | null;
  const host = doc?.host || msg.host;
  if (deleted) {
    map.delete(keyOf(host, msg.id));
    // The id may be a uuid rather than the name.
    for (const [k, v] of map) {
      if (v.host === host && (v as { uuid?: string }).uuid === msg.id) map.delete(k);
    }
    return;
  }
  if (!doc) return;
  const name = doc.name || msg.id;
  map.set(keyOf(host, name), { ...doc, name, host });
}

export const live = new LiveStore();
