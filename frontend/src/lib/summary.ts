// Figures derived from the live store, shared by Dashboard and Hosts.

import type { Host, VM, VMState } from './types';
import { VM_STATES } from './types';

export type StateCounts = Partial<Record<VMState, number>>;

export function countByState(vms: Iterable<VM>): StateCounts {
  const out: StateCounts = {};
  for (const vm of vms) out[vm.state] = (out[vm.state] ?? 0) + 1;
  return out;
}

/** [state, count] pairs with a count, in the usual order (running first). */
export function stateEntries(counts: StateCounts): [VMState, number][] {
  return VM_STATES.filter((s) => (counts[s] ?? 0) > 0).map((s) => [s, counts[s] as number]);
}

export function hostMemoryUsed(h: Host): number | null {
  if (h.memory_total_bytes === null || h.memory_total_bytes === undefined) return null;
  return Math.max(0, h.memory_total_bytes - (h.memory_free_bytes ?? 0));
}

export interface Totals {
  hostsUp: number;
  hosts: number;
  cpus: number;
  cpuPercent: number | null;
  memoryTotal: number;
  memoryUsed: number;
}

/** Overall figures; CPU % is weighted by each host's CPU count. */
export function totals(hosts: Host[]): Totals {
  let cpus = 0;
  let weighted = 0;
  let weightedCpus = 0;
  let memoryTotal = 0;
  let memoryUsed = 0;
  let hostsUp = 0;
  for (const h of hosts) {
    if (h.state === 'up') hostsUp++;
    cpus += h.cpus ?? 0;
    if (h.cpu_percent !== null && h.cpu_percent !== undefined && h.state === 'up') {
      const n = h.cpus ?? 1;
      weighted += h.cpu_percent * n;
      weightedCpus += n;
    }
    memoryTotal += h.memory_total_bytes ?? 0;
    memoryUsed += hostMemoryUsed(h) ?? 0;
  }
  return {
    hostsUp,
    hosts: hosts.length,
    cpus,
    cpuPercent: weightedCpus ? weighted / weightedCpus : null,
    memoryTotal,
    memoryUsed,
  };
}

export function vmAddresses(vm: VM): string[] {
  return (vm.nics ?? []).flatMap((n) => n.addresses ?? []);
}
