// Fetch wrapper for the Flint REST API (same origin, /api/v1).
//
// - cookies are sent same-origin; every non-GET request carries X-CSRF-Token = the flint_csrf cookie
// - non-2xx answers become an ApiError built from the RFC 9457 problem+json body
// - a 401 from any call except login runs the unauthorized handler (the app sends the user to /login)

import type {
  HealthDetails,
  Host,
  MetricsSeries,
  Page,
  StorageSummary,
  User,
  VM,
  VMAction,
} from './types';

export const API_BASE = '/api/v1';

export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly type: string;
  readonly errors: FieldError[];
  /** True once the app has dealt with it (e.g. a 401 that sent the user to the login page). */
  handled = false;

  constructor(status: number, title: string, detail: string, type = 'about:blank', errors: FieldError[] = []) {
    super(detail || title);
    this.name = 'ApiError';
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.type = type;
    this.errors = errors;
  }
}

export function getCookie(name: string): string | null {
  for (const part of document.cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return null;
}

/** May answer "still signed in after all" (true): the request raced a new session cookie; it is sent once more. */
type UnauthorizedHandler = (err: ApiError) => void | boolean | Promise<boolean>;
let unauthorizedHandler: UnauthorizedHandler | null = null;

/** The app registers what to do on a 401 (go to the login page). */
export function setUnauthorizedHandler(fn: UnauthorizedHandler | null): void {
  unauthorizedHandler = fn;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | null | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Do not run the unauthorized handler on 401 (login, and the silent session probe at start). */
  noAuthRedirect?: boolean;
  /** Internal: this is the one repeat after a 401 that raced a session change. */
  retried?: boolean;
}

function buildUrl(path: string, query?: RequestOptions['query']): string {
  let url = API_BASE + (path.startsWith('/') ? path : '/' + path);
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += (url.includes('?') ? '&' : '?') + qs;
  }
  return url;
}

async function problemFrom(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  const fallbackTitle = res.statusText || `HTTP ${res.status}`;
  if (text) {
    try {
      const p = JSON.parse(text) as Record<string, unknown>;
      if (p && typeof p === 'object') {
        const title = typeof p.title === 'string' ? p.title : fallbackTitle;
        // Litestar's own errors may use "detail" as a string or carry "extra"; accept what is there.
        const detail = typeof p.detail === 'string' ? p.detail : typeof p.message === 'string' ? p.message : title;
        const errors: FieldError[] = Array.isArray(p.errors)
          ? (p.errors as unknown[])
              .filter((e): e is Record<string, unknown> => !!e && typeof e === 'object')
              .map((e) => ({ field: String(e.field ?? e.key ?? ''), message: String(e.message ?? '') }))
          : [];
        return new ApiError(res.status, title, detail, typeof p.type === 'string' ? p.type : 'about:blank', errors);
      }
    } catch {
      /* not JSON: fall through */
    }
  }
  const detail = text && text.length < 300 && !text.trimStart().startsWith('<') ? text.trim() : fallbackTitle;
  return new ApiError(res.status, fallbackTitle, detail);
}

export async function request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json, application/problem+json', ...opts.headers };
  const init: RequestInit = { method, credentials: 'same-origin', headers, signal: opts.signal };
  if (method !== 'GET' && method !== 'HEAD') {
    const token = getCookie('flint_csrf');
    if (token) headers['X-CSRF-Token'] = token;
  }
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }

  let res: Response;
  try {
    res = await fetch(buildUrl(path, opts.query), init);
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(
      0,
      'Network error',
      `Could not reach the Flint gateway (${method} ${path}): ${e instanceof Error ? e.message : String(e)}`,
    );
  }

  if (!res.ok) {
    const err = await problemFrom(res);
    if (res.status === 401 && !opts.noAuthRedirect && unauthorizedHandler) {
      // Refused before it ran (authentication comes first), so sending it again is safe.
      if ((await unauthorizedHandler(err)) === true && !opts.retried) return request<T>(method, path, { ...opts, retried: true });
      err.handled = true;
    }
    throw err;
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(res.status, 'Bad response', `The gateway sent a response that is not JSON (${method} ${path}).`);
  }
}

export const api = {
  get: <T>(path: string, opts?: RequestOptions) => request<T>('GET', path, opts),
  post: <T>(path: string, body?: unknown, opts?: RequestOptions) => request<T>('POST', path, { ...opts, body }),
  patch: <T>(path: string, body?: unknown, opts?: RequestOptions) => request<T>('PATCH', path, { ...opts, body }),
  put: <T>(path: string, body?: unknown, opts?: RequestOptions) => request<T>('PUT', path, { ...opts, body }),
  del: <T>(path: string, opts?: RequestOptions) => request<T>('DELETE', path, opts),
};

// ---- typed endpoints -------------------------------------------------------------------------

export const login = (username: string, password: string) =>
  api.post<User>('/auth/login', { username, password }, { noAuthRedirect: true });
export const logout = () => api.post<void>('/auth/logout', undefined, { noAuthRedirect: true });
export const me = (opts?: RequestOptions) => api.get<User>('/auth/me', opts);

export const listVMs = (query: { host?: string; q?: string; state?: string; offset?: number; limit?: number } = {}) =>
  api.get<Page<VM>>('/vms', { query });
export const getVM = (id: string) => api.get<VM>(`/vms/${encodeURIComponent(id)}`);
export const getVMMetrics = (id: string) => api.get<MetricsSeries>(`/vms/${encodeURIComponent(id)}/metrics`);
export const vmAction = (id: string, action: VMAction) =>
  api.post<unknown>(`/vms/${encodeURIComponent(id)}/actions`, { action });

export const listHosts = () => api.get<Host[]>('/hosts');

export interface HostAdd {
  name: string;
  uri: string;
  ssh_private_key?: string;
  known_hosts?: string;
}
export interface HostRegistration {
  name: string;
  uri: string;
  kind: 'ssh' | 'test';
  host_keys: string[];
  key_fingerprint: string;
  created_at: number;
  created_by: string;
}
/** Add an agentless host (admin): its services start under this Flint. */
export const addHost = (body: HostAdd) => api.post<HostRegistration>('/hosts', body);
export const removeHost = (name: string) => api.del<void>(`/hosts/${encodeURIComponent(name)}`);
export const storageSummary = () => api.get<StorageSummary>('/storage/summary');
export const healthDetails = () => api.get<HealthDetails>('/health/details');

/** Every VM, following offset/total (the list is paged server-side). */
export async function listAllVMs(): Promise<VM[]> {
  const all: VM[] = [];
  for (let page = 0; page < 100; page++) {
    const res = await listVMs(all.length ? { offset: all.length } : {});
    const items = Array.isArray(res) ? (res as VM[]) : (res.items ?? []);
    all.push(...items);
    if (Array.isArray(res) || items.length === 0 || all.length >= (res.total ?? all.length)) break;
  }
  return all;
}
