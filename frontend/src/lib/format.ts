// Formatting shared by every page, so the same figure always reads the same everywhere.

import type { Usage } from './types';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** 1536 → "1.5 KiB"; binary units, one decimal below 100, none above. */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  if (n < 0) return '-' + formatBytes(-n);
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${UNITS[i]}`;
}

export function formatMiB(mib: number | null | undefined): string {
  if (mib === null || mib === undefined) return '—';
  return formatBytes(mib * 1024 * 1024);
}

export function formatRate(bps: number | null | undefined): string {
  if (bps === null || bps === undefined || !Number.isFinite(bps)) return '—';
  return `${formatBytes(bps)}/s`;
}

/** Share of capacity used, clamped to 0–100 (never more than 100 %). */
export function usedPercent(used: number | null | undefined, capacity: number | null | undefined): number {
  if (!capacity || capacity <= 0 || used === null || used === undefined || !Number.isFinite(used)) return 0;
  return Math.min(100, Math.max(0, (used / capacity) * 100));
}

export function formatPercent(p: number | null | undefined, digits = 0): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return '—';
  return `${Math.min(100, Math.max(0, p)).toFixed(digits)}%`;
}

/** "12.3 GiB / 50.0 GiB": the one used/capacity text that Dashboard and Storage both show. */
export function formatUsage(u: Pick<Usage, 'used' | 'capacity'> | null | undefined): string {
  if (!u) return '—';
  return `${formatBytes(u.used)} / ${formatBytes(u.capacity)}`;
}

export function formatUptime(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m`;
}

export function formatTime(t: number): string {
  return new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
