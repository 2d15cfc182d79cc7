// WebSocket client for /api/v1/events. Reconnects with exponential backoff (plus jitter),
// remembers the last seq and resumes with ?since=SEQ. Messages are applied to the live store.

import type { EventMessage } from './types';
import { live, type LiveStore } from './live.svelte';

export interface EventStreamOptions {
  /** Base delay of the first reconnect, ms. */
  minDelay?: number;
  /** Longest wait between reconnects, ms. */
  maxDelay?: number;
}

export function eventsUrl(since: number | null, loc: Location = location): string {
  const proto = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = since !== null ? `?since=${since}` : '';
  return `${proto}//${loc.host}/api/v1/events${q}`;
}

export class EventStream {
  #store: LiveStore;
  #ws: WebSocket | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #attempt = 0;
  #running = false;
  #opts: Required<EventStreamOptions>;
  /** Called when a connection closed without ever opening (a sign the session may have ended). */
  onFailedConnect: (() => void) | null = null;

  constructor(store: LiveStore, opts: EventStreamOptions = {}) {
    this.#store = store;
    this.#opts = { minDelay: 500, maxDelay: 15000, ...opts };
  }

  get running(): boolean {
    return this.#running;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#attempt = 0;
    window.addEventListener('online', this.#onOnline);
    this.#connect();
  }

  stop(): void {
    this.#running = false;
    window.removeEventListener('online', this.#onOnline);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, 'logout');
      } catch {
        /* already closed */
      }
    }
    this.#store.connection = 'offline';
  }

  /** Drop the current socket and connect again now (e.g. from a "reconnect" button). */
  reconnectNow(): void {
    if (!this.#running) return this.start();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#attempt = 0;
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      ws.close();
    }
    this.#connect();
  }

  #onOnline = (): void => {
    if (this.#running && this.#store.connection !== 'live') this.reconnectNow();
  };

  #connect(): void {
    if (!this.#running) return;
    this.#store.connection = this.#attempt === 0 && this.#store.lastSeq === null ? 'connecting' : 'reconnecting';
    let opened = false;
    let ws: WebSocket;
    try {
      ws = new WebSocket(eventsUrl(this.#store.lastSeq));
    } catch (e) {
      console.error('events: cannot open WebSocket', e);
      this.#schedule();
      return;
    }
    this.#ws = ws;
    ws.onopen = () => {
      opened = true;
      this.#store.connection = 'live';
    };
    ws.onmessage = (ev: MessageEvent) => {
      // A message proves the stream works: the next drop starts the backoff from the beginning.
      this.#attempt = 0;
      let msg: EventMessage;
      try {
        msg = JSON.parse(typeof ev.data === 'string' ? ev.data : '') as EventMessage;
      } catch {
        console.warn('events: ignoring a message that is not JSON');
        return;
      }
      if (msg && typeof msg === 'object' && typeof msg.kind === 'string') this.#store.apply(msg);
    };
    ws.onerror = () => {
      /* onclose follows and schedules the reconnect */
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      if (!this.#running) return;
      // 4401/4403/1008: the gateway refused the session; the next REST call will tell (and redirect on 401).
      if (!opened || ev.code === 1008 || ev.code === 4401 || ev.code === 4403) this.onFailedConnect?.();
      this.#schedule();
    };
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#store.connection = 'reconnecting';
    const base = Math.min(this.#opts.maxDelay, this.#opts.minDelay * 2 ** this.#attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.#attempt = Math.min(this.#attempt + 1, 16);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#connect();
    }, delay);
  }
}

export const events = new EventStream(live);
