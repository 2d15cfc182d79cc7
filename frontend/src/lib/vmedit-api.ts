// Changing an existing VM: settings (PATCH), snapshots, disks, NICs, clone (a job).

import { api } from './api';
import type { Job } from './types';

export interface Snapshot {
  name: string;
  description: string;
  created_at: number;
  state: string;
  parent: string | null;
  current: boolean;
}
export interface UpdateReply {
  id: string;
  live: string[];
  next_boot: string[];
  message: string;
}
export interface DeviceChange {
  id: string;
  action: string;
  device: string;
  live: boolean;
  volume: string | null;
  message: string;
}
export interface VMUpdate {
  vcpus?: number;
  memory_mib?: number;
  autostart?: boolean;
  description?: string;
}

const base = (id: string) => `/vms/${encodeURIComponent(id)}`;

export const updateVM = (id: string, body: VMUpdate) => api.patch<UpdateReply>(base(id), body);
export const cloneVM = (id: string, name: string, linked: boolean) =>
  api.post<Job>(`${base(id)}/clone`, { name, linked });
export const listSnapshots = (id: string) =>
  api.get<{ id: string; snapshots: Snapshot[] }>(`${base(id)}/snapshots`).then((r) => r.snapshots);
export const createSnapshot = (id: string, name: string, description: string) =>
  api.post<Snapshot>(`${base(id)}/snapshots`, { name, ...(description ? { description } : {}) });
export const revertSnapshot = (id: string, name: string) =>
  api.post<{ state: string }>(`${base(id)}/snapshots/${encodeURIComponent(name)}/revert`);
export const deleteSnapshot = (id: string, name: string) =>
  api.del<unknown>(`${base(id)}/snapshots/${encodeURIComponent(name)}`);
export const attachDisk = (
  id: string,
  body: { size_gib?: number; pool?: string; volume?: string; bus?: string },
) => api.post<DeviceChange>(`${base(id)}/disks`, body);
export const detachDisk = (id: string, target: string) =>
  api.del<DeviceChange>(`${base(id)}/disks/${encodeURIComponent(target)}`);
export const attachNic = (id: string, body: { network?: string; bridge?: string; model?: string }) =>
  api.post<DeviceChange>(`${base(id)}/nics`, body);
export const detachNic = (id: string, mac: string) =>
  api.del<DeviceChange>(`${base(id)}/nics/${encodeURIComponent(mac)}`);
