// A tiny history-API router. The gateway answers every non-API path with index.html.

export type RouteName =
  | 'login'
  | 'dashboard'
  | 'vms'
  | 'vm'
  | 'vm-create'
  | 'console'
  | 'storage'
  | 'networks'
  | 'firewall'
  | 'hosts'
  | 'settings'
  | 'users'
  | 'tokens'
  | 'audit'
  | 'notfound';

export interface Route {
  name: RouteName;
  params: Record<string, string>;
}

const table: [RegExp, RouteName, string[]][] = [
  [/^\/login\/?$/, 'login', []],
  [/^\/$/, 'dashboard', []],
  [/^\/dashboard\/?$/, 'dashboard', []],
  [/^\/vms\/?$/, 'vms', []],
  [/^\/vms\/new\/?$/, 'vm-create', []],
  [/^\/vms\/([^/]+)\/?$/, 'vm', ['id']],
  [/^\/vms\/([^/]+)\/console\/?$/, 'console', ['id']],
  [/^\/storage\/?$/, 'storage', []],
  [/^\/networks\/?$/, 'networks', []],
  [/^\/firewall\/?$/, 'firewall', []],
  [/^\/hosts\/?$/, 'hosts', []],
  [/^\/settings\/?$/, 'settings', []],
  [/^\/users\/?$/, 'users', []],
  [/^\/tokens\/?$/, 'tokens', []],
  [/^\/audit\/?$/, 'audit', []],
];

export function matchRoute(path: string): Route {
  for (const [re, name, keys] of table) {
    const m = re.exec(path);
    if (m) {
      const params: Record<string, string> = {};
      keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
      return { name, params };
    }
  }
  return { name: 'notfound', params: {} };
}

class Router {
  path = $state(location.pathname);
  search = $state(location.search);
  route = $derived(matchRoute(this.path));
  query = $derived(new URLSearchParams(this.search));

  constructor() {
    window.addEventListener('popstate', () => this.#sync());
  }

  #sync(): void {
    this.path = location.pathname;
    this.search = location.search;
  }

  /** Go to an in-app path ("/vms?state=running"). */
  navigate(to: string, opts: { replace?: boolean } = {}): void {
    const url = new URL(to, location.origin);
    const target = url.pathname + url.search + url.hash;
    if (target !== location.pathname + location.search + location.hash) {
      if (opts.replace) history.replaceState(null, '', target);
      else history.pushState(null, '', target);
      if (!opts.replace) window.scrollTo(0, 0);
    }
    this.#sync();
  }

  /** Update the query string in place (filters), without a new history entry. */
  setQuery(values: Record<string, string | null | undefined>): void {
    const params = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(values)) {
      if (v) params.set(k, v);
      else params.delete(k);
    }
    const qs = params.toString();
    history.replaceState(null, '', location.pathname + (qs ? '?' + qs : ''));
    this.search = location.search;
  }
}

export const router = new Router();

/** Click delegation: in-app <a href="/..."> links navigate without a page load. */
export function interceptLinks(ev: MouseEvent): void {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = (ev.target as Element | null)?.closest?.('a');
  if (!a || !(a instanceof HTMLAnchorElement)) return;
  if (a.target && a.target !== '_self') return;
  if (a.hasAttribute('download') || a.origin !== location.origin) return;
  if (a.pathname.startsWith('/api/')) return;
  ev.preventDefault();
  router.navigate(a.pathname + a.search + a.hash);
}
