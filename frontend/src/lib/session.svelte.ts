// Who is signed in, and starting/stopping the live connection around that.

import { ApiError, listAllVMs, listHosts, login, logout, me, setUnauthorizedHandler } from './api';
import { events } from './events';
import { live } from './live.svelte';
import { notices } from './notices.svelte';
import { router } from './router.svelte';
import type { User } from './types';

function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login') ? next : '/';
}

class Session {
  user = $state<User | null>(null);
  /** The start-up session probe has finished. */
  ready = $state(false);
  /** Shown on the login page (e.g. "your session has ended"). */
  loginMessage = $state('');

  canOperate = $derived(this.user !== null && this.user.role !== 'viewer');

  #lastProbe = 0;

  constructor() {
    setUnauthorizedHandler(() => this.expired());
    events.onFailedConnect = () => this.#probe();
  }

  /** At start: find out whether the session cookie is still good. */
  async boot(): Promise<void> {
    try {
      const user = await me({ noAuthRedirect: true });
      this.#begin(user);
      if (router.route.name === 'login') router.navigate(safeNext(router.query.get('next')), { replace: true });
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) notices.error(e, 'Cannot check the session');
      this.#toLogin();
    } finally {
      this.ready = true;
    }
  }

  async signIn(username: string, password: string): Promise<void> {
    const user = await login(username, password);
    this.loginMessage = '';
    notices.clearErrors();
    // Some gateways answer login with only {username}; ask for the role if it is missing.
    this.#begin(user && user.role ? user : await me());
    router.navigate(safeNext(router.query.get('next')), { replace: true });
  }

  async signOut(): Promise<void> {
    try {
      await logout();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        notices.error(e, 'Sign out failed');
        return;
      }
    }
    this.#end();
    router.navigate('/login', { replace: true });
  }

  /** Any API call answered 401: the session is gone. */
  expired(): void {
    if (this.user) this.loginMessage = 'Your session has ended. Sign in again.';
    this.#end();
    this.#toLogin();
  }

  #toLogin(): void {
    if (router.route.name === 'login') return;
    const here = router.path + router.search;
    router.navigate(here && here !== '/' ? `/login?next=${encodeURIComponent(here)}` : '/login', { replace: true });
  }

  #begin(user: User): void {
    this.user = user;
    events.start();
    // Fill the store from REST too, in case the WebSocket is slow; a snapshot wins over this.
    Promise.allSettled([listAllVMs(), listHosts()]).then(([vms, hosts]) => {
      if (!this.user) return;
      if (vms.status === 'rejected') notices.error(vms.reason, 'Loading VMs failed');
      if (hosts.status === 'rejected') notices.error(hosts.reason, 'Loading hosts failed');
      live.seed(
        vms.status === 'fulfilled' ? vms.value : null,
        hosts.status === 'fulfilled' ? (Array.isArray(hosts.value) ? hosts.value : []) : null,
      );
    });
  }

  #end(): void {
    this.user = null;
    events.stop();
    live.reset();
  }

  /** The WebSocket would not open: if the session expired, /auth/me says 401 and we go to login. */
  #probe(): void {
    const now = Date.now();
    if (!this.user || now - this.#lastProbe < 10000) return;
    this.#lastProbe = now;
    me({ noAuthRedirect: true }).catch((e) => {
      if (e instanceof ApiError && e.status === 401) this.expired();
      // Other failures (gateway down) already show as the grey "reconnecting" indicator.
    });
  }
}

export const session = new Session();
