// Pools and volumes of a host (REST /hosts/{host}/pools...), and uploads with the browser's own progress.

import { API_BASE, ApiError, api, getCookie } from './api';
import type { Job, Pool } from './types';

export interface PoolSource {
  host?: string | null;
  port?: number | null;
  dir?: string | null;
  name?: string | null;
  devices?: string[];
  format?: string | null;
  adapter?: string | null;
  initiator?: string | null;
  auth_username?: string | null;
  auth_secret_uuid?: string | null;
}

export interface PoolDetail {
  host: string;
  name: string;
  uuid: string;
  type: string;
  state: string;
  active: boolean;
  autostart: boolean;
  persistent: boolean;
  target: string | null;
  capacity: number;
  allocation: number;
  available: number;
  volumes: number;
  source: PoolSource;
}

export interface PoolCreateBody {
  name: string;
  type: string;
  target?: string;
  source?: PoolSource;
  build?: boolean | null;
  overwrite?: boolean;
  start?: boolean;
  autostart?: boolean;
}

export interface VolumeInfo {
  name: string;
  pool: string;
  path: string;
  capacity: number;
  allocation: number;
  format: string | null;
  type: string;
  backing_path?: string | null;
}

export type PoolAction = 'start' | 'stop' | 'refresh' | 'autostart' | 'noautostart' | 'build';

const enc = encodeURIComponent;
const poolsPath = (host: string) => `/hosts/${enc(host)}/pools`;
const poolPath = (host: string, pool: string) => `${poolsPath(host)}/${enc(pool)}`;

export const listPools = (host: string) => api.get<Pool[]>(poolsPath(host));
export const getPool = (host: string, pool: string) => api.get<PoolDetail>(poolPath(host, pool));
export const createPool = (host: string, body: PoolCreateBody) => api.post<PoolDetail>(poolsPath(host), body);
export const deletePool = (host: string, pool: string, deleteVolumes: boolean, force: boolean) =>
  api.del<unknown>(poolPath(host, pool), { query: { delete_volumes: deleteVolumes, force } });
export const poolAction = (host: string, pool: string, action: PoolAction) =>
  api.post<PoolDetail>(`${poolPath(host, pool)}/actions`, { action });

export const listVolumes = (host: string, pool: string) => api.get<VolumeInfo[]>(`${poolPath(host, pool)}/volumes`);
export const createVolume = (
  host: string,
  pool: string,
  body: { name: string; capacity: string | number; format: string; preallocate: boolean },
) => api.post<VolumeInfo>(`${poolPath(host, pool)}/volumes`, body);
export const deleteVolume = (host: string, pool: string, vol: string) =>
  api.del<unknown>(`${poolPath(host, pool)}/volumes/${enc(vol)}`);
export const resizeVolume = (host: string, pool: string, vol: string, capacity: string, allowShrink: boolean) =>
  api.post<VolumeInfo>(`${poolPath(host, pool)}/volumes/${enc(vol)}/resize`, { capacity, allow_shrink: allowShrink });
export const importVolume = (
  host: string,
  pool: string,
  body: { url: string; name?: string; sha256?: string; format?: string },
) => api.post<Job>(`${poolPath(host, pool)}/volumes/import`, body);
export const getJob = (id: string) => api.get<Job>(`/jobs/${enc(id)}`);

export interface UploadHandle {
  promise: Promise<Job>;
  abort: () => void;
}

/** PUT the file as the volume's content. fetch() cannot report upload progress, XMLHttpRequest can:
 *  onProgress gets (sent, total) while the browser sends; the promise resolves to the job (202). */
export function uploadVolume(
  host: string,
  pool: string,
  name: string,
  file: File,
  onProgress: (sent: number, total: number) => void,
): UploadHandle {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<Job>((resolve, reject) => {
    xhr.open('PUT', `${API_BASE}${poolPath(host, pool)}/volumes/${enc(name)}/content`);
    xhr.setRequestHeader('Accept', 'application/json, application/problem+json');
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    const token = getCookie('flint_csrf');
    if (token) xhr.setRequestHeader('X-CSRF-Token', token);
    xhr.upload.onprogress = (ev) => onProgress(ev.loaded, ev.lengthComputable ? ev.total : file.size);
    xhr.onload = () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(xhr.responseText || '{}');
      } catch {
        /* not JSON */
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body as unknown as Job);
        return;
      }
      const errors = Array.isArray(body.errors)
        ? (body.errors as Record<string, unknown>[]).map((e) => ({ field: String(e.field ?? ''), message: String(e.message ?? '') }))
        : [];
      const title = typeof body.title === 'string' ? body.title : `HTTP ${xhr.status}`;
      const detail = typeof body.detail === 'string' ? body.detail : title;
      reject(new ApiError(xhr.status, title, detail, 'about:blank', errors));
    };
    xhr.onerror = () => reject(new ApiError(0, 'Network error', 'The upload could not reach the Flint gateway.'));
    xhr.onabort = () => reject(new DOMException('upload cancelled', 'AbortError'));
    xhr.send(file);
  });
  return { promise, abort: () => xhr.abort() };
}
