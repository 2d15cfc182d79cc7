// Users, API tokens, the audit log and one's own password (shared/API.md: auth, users, audit).

import { api } from './api';
import type { User } from './types';

export type Role = 'viewer' | 'operator' | 'admin';

/** Lowest to highest: each role can do what the ones before it can. */
export const ROLES: Role[] = ['viewer', 'operator', 'admin'];

export function roleRank(role: string | null | undefined): number {
  return ROLES.indexOf(role as Role);
}

/** True when `role` is at least `minimal` (an unknown role allows nothing). */
export function roleAllows(role: string | null | undefined, minimal: Role): boolean {
  const r = roleRank(role);
  return r >= 0 && r >= roleRank(minimal);
}

/** The roles someone with `role` may hand out (a token never outranks its owner). */
export function rolesUpTo(role: string | null | undefined): Role[] {
  return ROLES.filter((r) => roleAllows(role, r));
}

export interface UserInfo {
  name: string;
  role: Role | string;
  disabled: boolean;
  created_at: number;
}

export interface TokenInfo {
  id: string;
  name: string;
  role: Role | string;
  owner: string;
  created_at: number;
  expires_at: number | null;
}

/** Only the create answer carries the secret; it is shown once and never kept. */
export interface TokenCreated {
  id: string;
  name: string;
  role: Role | string;
  token: string;
  expires_at: number | null;
}

export interface AuditRecord {
  ts: number;
  user: string;
  via: 'session' | 'token' | 'anonymous' | string;
  token_id: string | null;
  remote: string;
  /** "POST /api/v1/users" */
  action: string;
  target: Record<string, string>;
  status: number;
  result: 'ok' | 'refused' | 'failed' | string;
  job_id: string | null;
  host: string;
}

const seg = encodeURIComponent;

// own account
/** A 401 here is the caller's to handle (it runs inside session.replacingSession, which re-checks 401s). */
export const changePassword = (current_password: string, new_password: string) =>
  api.post<User>('/auth/password', { current_password, new_password }, { noAuthRedirect: true });
export const logoutAll = () => api.post<void>('/auth/logout-all', undefined, { noAuthRedirect: true });

// users (admin)
export const listUsers = () => api.get<UserInfo[]>('/users');
export const createUser = (body: { name: string; password: string; role: string }) =>
  api.post<UserInfo>('/users', body);
export const updateUser = (name: string, body: { role?: string; disabled?: boolean; password?: string }) =>
  api.patch<UserInfo>(`/users/${seg(name)}`, body);
export const deleteUser = (name: string) => api.del<void>(`/users/${seg(name)}`);

// API tokens (everyone: one's own; an admin sees all)
export const listTokens = () => api.get<TokenInfo[]>('/auth/tokens');
export const createToken = (body: { name: string; role: string; expires_in_days?: number }) =>
  api.post<TokenCreated>('/auth/tokens', body);
export const revokeToken = (id: string) => api.del<void>(`/auth/tokens/${seg(id)}`);

// audit log (admin), newest first
export const listAudit = (query: { since?: number; user?: string; limit?: number }) =>
  api.get<AuditRecord[]>('/audit', { query });

/** "2024-05-01 14:03:22" in local time, for tables. */
export function formatDateTime(t: number | null | undefined): string {
  if (t === null || t === undefined || !Number.isFinite(t)) return '—';
  const d = new Date(t * 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
