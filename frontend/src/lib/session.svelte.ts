// Who is signed in, and starting/stopping the live connection around that.

import { logoutAll, roleAllows, type Role } from './accounts';
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
  isAdmin = $derived(roleAllows(this.user?.role, 'admin'));

  /** The signed-in user's role is at least `minimal` (viewer < operator < admin). */
  hasRole(minimal: Role): boolean {
    return roleAllows(this.user?.role, minimal);
  }

  #lastProbe = 0;
  /** A call that replaces the session cookie is on its way (see replacingSession). */
  #sessionChange: Promise<void> | null = null;
  #sessionChangedAt = 0;

  constructor() {
    setUnauthorizedHandler(() => this.#unauthorized());
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

  /** End every session of this user (other browsers too), then the login page. */
  async signOutEverywhere(): Promise<void> {
    try {
      await logoutAll();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) {
        notices.error(e, 'Log out everywhere failed');
        return;
      }
    }
    this.loginMessage = 'You have been logged out everywhere.';
    this.#end();
    router.navigate('/login', { replace: true });
  }

  /** The signed-in user's own record changed (new password -> new cookie; role changed by an admin). */
  updateUser(user: User): void {
    if (this.user && user?.username) this.user = { ...this.user, ...user };
  }

  /**
   * Run a call that ends the current session and sets a new cookie (changing one's own password).
   * The gateway ends the old session before the answer arrives, so a request sent meanwhile with the
   * old cookie (a poll, a WebSocket reconnect) gets 401: that one must not log the user out.
   */
  async replacingSession<T>(call: () => Promise<T>): Promise<T> {
    const p = call();
    const settled = p.then(
      () => {},
      () => {},
    );
    this.#sessionChange = settled;
    try {
      return await p;
    } finally {
      this.#sessionChangedAt = Date.now();
      if (this.#sessionChange === settled) this.#sessionChange = null;
    }
  }

  /**
   * A 401: the session is gone, unless it raced a cookie replacement. Then ask again with the new
   * cookie: true = still signed in (the caller repeats its request).
   */
  async #unauthorized(): Promise<boolean> {
    if (!this.#sessionChange && Date.now() - this.#sessionChangedAt > 5000) {
      this.expired();
      return false;
    }
    try {
      await this.#sessionChange;
      await me({ noAuthRedirect: true });
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) this.expired();
      return false;
    }
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
      if (e instanceof ApiError && e.status === 401) void this.#unauthorized();
      // Other failures (gateway down) already show as the grey "reconnecting" indicator.
    });
  }
}

export const session = new Session();
