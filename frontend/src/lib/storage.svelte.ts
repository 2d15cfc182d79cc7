// One shared copy of GET /storage/summary: Dashboard and Storage read the same object and format it
// with the same functions, so their figures always agree. Refreshed on pool events while watched.

import { storageSummary } from './api';
import { live } from './live.svelte';
import { notices } from './notices.svelte';
import type { StorageHost, StorageSummary } from './types';

const REFRESH_MS = 30000;

class StorageStore {
  summary = $state<StorageSummary | null>(null);
  loading = $state(false);
  error = $state<string | null>(null);

  #watchers = 0;
  #timer: ReturnType<typeof setInterval> | null = null;
  #debounce: ReturnType<typeof setTimeout> | null = null;
  #unsubscribe: (() => void) | null = null;

  byHost(host: string): StorageHost | undefined {
    return this.summary?.hosts.find((h) => h.host === host);
  }

  async load(): Promise<void> {
    this.loading = true;
    try {
      this.summary = await storageSummary();
      this.error = null;
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
      notices.error(e, 'Loading storage failed');
    } finally {
      this.loading = false;
    }
  }

  /** Call from a component's $effect; returns the cleanup. */
  watch(): () => void {
    this.#watchers++;
    if (this.#watchers === 1) {
      this.load();
      this.#timer = setInterval(() => this.load(), REFRESH_MS);
      this.#unsubscribe = live.onChange((msg) => {
        if (msg.kind !== 'pool' && msg.kind !== 'snapshot') return;
        if (this.#debounce) clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => this.load(), 800);
      });
    }
    return () => {
      this.#watchers--;
      if (this.#watchers === 0) {
        if (this.#timer) clearInterval(this.#timer);
        if (this.#debounce) clearTimeout(this.#debounce);
        this.#unsubscribe?.();
        this.#timer = this.#debounce = null;
        this.#unsubscribe = null;
      }
    };
  }
}

export const storage = new StorageStore();
