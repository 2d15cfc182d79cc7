// Console connections (VNC and serial): a single-use ticket per attempt, a same-origin WebSocket, and
// automatic reconnect with backoff. The ticket lives only in the WebSocket URL, never in the page URL.

import { api, ApiError } from './api';

export type ConsoleType = 'vnc' | 'serial';
export type LinkState = 'connecting' | 'connected' | 'disconnected';

export interface ConsoleTicket {
  ticket: string;
  url: string;
  expires_at: number;
  type: ConsoleType;
  vm_id: string;
  vm_name: string;
}

export const requestTicket = (vmId: string, type: ConsoleType) =>
  api.post<ConsoleTicket>(`/vms/${encodeURIComponent(vmId)}/console`, { type });

export function openSocket(ticket: ConsoleTicket): WebSocket {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}${ticket.url}`, ['binary']);
  ws.binaryType = 'arraybuffer';
  return ws;
}

/** Close codes the gateway ends a console with (see flint/tickets.py). */
export const CLOSE_REFUSED = 4403;
export const CLOSE_NOT_RUNNING = 4409;
export const CLOSE_TAKEN_OVER = 4001; // the serial console was opened elsewhere: do not steal it back

const BACKOFF_S = [1, 2, 4, 8, 15];

export interface Attached {
  /** Tear down the viewer (RFB / terminal wiring); the socket is closed by the link. */
  detach(): void;
}

/**
 * One console's connection: ask for a ticket, open the socket, hand it to the viewer, and when it ends,
 * try again (a new ticket each time) unless the VM is not running or the user may not.
 */
export class ConsoleLink {
  state = $state<LinkState>('disconnected');
  /** What the user should know: why it is disconnected, or what it is waiting for. */
  message = $state('');
  /** False when reconnecting is pointless until something changes (VM stopped, no rights). */
  retrying = $state(false);

  #vmId: string;
  #type: ConsoleType;
  #attach: (ws: WebSocket, ticket: ConsoleTicket, link: ConsoleLink) => Attached;
  #blocked: () => string | null;
  #ws: WebSocket | null = null;
  #attached: Attached | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #attempt = 0;
  #connectedAt = 0;
  #running = false;
  #generation = 0;

  constructor(
    vmId: string,
    type: ConsoleType,
    attach: (ws: WebSocket, ticket: ConsoleTicket, link: ConsoleLink) => Attached,
    blocked: () => string | null,
  ) {
    this.#vmId = vmId;
    this.#type = type;
    this.#attach = attach;
    this.#blocked = blocked;
  }

  start(): void {
    this.#running = true;
    this.#attempt = 0;
    this.#connect();
  }

  stop(): void {
    this.#running = false;
    this.#generation++;
    this.#clearTimer();
    this.#teardown();
    this.state = 'disconnected';
  }

  /** Connect now (a button, or the VM started): forget the backoff. */
  reconnect(): void {
    if (!this.#running) return this.start();
    this.#attempt = 0;
    this.#clearTimer();
    this.#teardown();
    this.#connect();
  }

  /** Something changed (VM state): connect if we were waiting for it. */
  poke(): void {
    if (this.#running && this.state === 'disconnected' && !this.#timer) this.reconnect();
  }

  /** The viewer reached its connected state (RFB handshake done, or the serial socket open). */
  connected(): void {
    this.state = 'connected';
    this.message = '';
    this.#connectedAt = Date.now();
  }

  async #connect(): Promise<void> {
    if (!this.#running) return;
    const gen = ++this.#generation;
    const blocked = this.#blocked();
    if (blocked) {
      this.state = 'disconnected';
      this.message = blocked;
      this.retrying = false;
      return;
    }
    this.state = 'connecting';
    let ticket: ConsoleTicket;
    try {
      ticket = await requestTicket(this.#vmId, this.#type);
    } catch (e) {
      if (gen !== this.#generation) return;
      const err = e instanceof ApiError ? e : null;
      this.state = 'disconnected';
      this.message = err ? err.detail : String(e);
      // 401/403 (no rights), 404 (no VM), 409/422/501 (not running, no such device): wait for a change.
      if (err && err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429) {
        this.retrying = false;
        return;
      }
      if (err?.status === 501) return;
      this.#schedule();
      return;
    }
    if (gen !== this.#generation || !this.#running) return;
    const ws = openSocket(ticket);
    this.#ws = ws;
    ws.addEventListener('close', (ev) => {
      if (gen !== this.#generation) return;
      this.#onClose(ev.code, ev.reason);
    });
    try {
      this.#attached = this.#attach(ws, ticket, this);
    } catch (e) {
      this.message = `The console viewer failed: ${e instanceof Error ? e.message : String(e)}`;
      ws.close();
    }
  }

  #onClose(code: number, reason: string): void {
    this.#teardown();
    this.state = 'disconnected';
    if (!this.#running) return;
    if (Date.now() - this.#connectedAt > 10_000) this.#attempt = 0;
    this.message = reason || (code === 1006 ? 'The connection to the gateway was lost' : `Closed (code ${code})`);
    const blocked = this.#blocked();
    if (code === CLOSE_NOT_RUNNING || code === CLOSE_TAKEN_OVER || blocked) {
      this.message = blocked ?? this.message;
      this.retrying = false;
      return;
    }
    this.#schedule();
  }

  #schedule(): void {
    const delay = BACKOFF_S[Math.min(this.#attempt, BACKOFF_S.length - 1)];
    this.#attempt++;
    this.retrying = true;
    this.#clearTimer();
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#connect();
    }, delay * 1000);
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #teardown(): void {
    const attached = this.#attached;
    const ws = this.#ws;
    this.#attached = null;
    this.#ws = null;
    try {
      attached?.detach();
    } catch {
      /* the viewer is going away anyway */
    }
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close();
  }
}

// ---- keyboard helpers for VNC ------------------------------------------------------------------

/** X11 keysyms and DOM codes of the keys in the combinations the toolbar offers. */
export const KEYS = {
  ctrl: [0xffe3, 'ControlLeft'],
  alt: [0xffe9, 'AltLeft'],
  shift: [0xffe1, 'ShiftLeft'],
  super: [0xffeb, 'MetaLeft'],
  del: [0xffff, 'Delete'],
  backspace: [0xff08, 'Backspace'],
  tab: [0xff09, 'Tab'],
  enter: [0xff0d, 'Enter'],
  esc: [0xff1b, 'Escape'],
  print: [0xff61, 'PrintScreen'],
  f: (n: number): [number, string] => [0xffbe + n - 1, `F${n}`],
} as const;

export type Key = readonly [number, string];

export interface Combo {
  label: string;
  keys: Key[];
}

export const COMBOS: Combo[] = [
  { label: 'Ctrl+Alt+Backspace', keys: [KEYS.ctrl, KEYS.alt, KEYS.backspace] },
  ...[1, 2, 3, 4, 5, 6, 7].map((n) => ({ label: `Ctrl+Alt+F${n}`, keys: [KEYS.ctrl, KEYS.alt, KEYS.f(n)] })),
  { label: 'Alt+Tab', keys: [KEYS.alt, KEYS.tab] },
  { label: 'Alt+F4', keys: [KEYS.alt, KEYS.f(4)] },
  { label: 'Super (Windows key)', keys: [KEYS.super] },
  { label: 'Print Screen', keys: [KEYS.print] },
  { label: 'Escape', keys: [KEYS.esc] },
];

const SHIFTED = '~!@#$%^&*()_+{}|:"<>?';

/** Keystrokes (keysym, code, needs shift) that type `text` on a US layout. */
export function keystrokes(text: string): [number, string | null, boolean][] {
  const out: [number, string | null, boolean][] = [];
  for (const ch of text.replace(/\r\n?/g, '\n')) {
    const cp = ch.codePointAt(0) ?? 0;
    if (ch === '\n') out.push([KEYS.enter[0], KEYS.enter[1], false]);
    else if (ch === '\t') out.push([KEYS.tab[0], KEYS.tab[1], false]);
    else if (cp < 0x20) continue;
    else {
      const keysym = cp < 0x100 ? cp : 0x01000000 + cp;
      out.push([keysym, null, (ch >= 'A' && ch <= 'Z') || SHIFTED.includes(ch)]);
    }
  }
  return out;
}
