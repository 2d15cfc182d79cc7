// User-visible notices. Errors stay until dismissed; info/success fade after a few seconds.

import { ApiError, type FieldError } from './api';

export interface Notice {
  id: number;
  kind: 'error' | 'info' | 'success';
  title: string;
  detail: string;
  errors: FieldError[];
  count: number;
}

class Notices {
  list = $state<Notice[]>([]);
  #next = 1;

  errors = $derived(this.list.filter((n) => n.kind === 'error'));
  others = $derived(this.list.filter((n) => n.kind !== 'error'));

  push(kind: Notice['kind'], title: string, detail = '', errors: FieldError[] = []): void {
    // The same message twice in a row is counted, not stacked.
    const same = this.list.find((n) => n.kind === kind && n.title === title && n.detail === detail);
    if (same) {
      same.count += 1;
      return;
    }
    const id = this.#next++;
    this.list.push({ id, kind, title, detail, errors, count: 1 });
    if (this.list.length > 8) this.list.splice(0, this.list.length - 8);
    if (kind !== 'error') setTimeout(() => this.dismiss(id), 4000);
  }

  dismiss(id: number): void {
    const i = this.list.findIndex((n) => n.id === id);
    if (i >= 0) this.list.splice(i, 1);
  }

  clearErrors(): void {
    this.list = this.list.filter((n) => n.kind !== 'error');
  }

  info(title: string, detail = ''): void {
    this.push('info', title, detail);
  }

  success(title: string, detail = ''): void {
    this.push('success', title, detail);
  }

  /** Show any thrown value to the user. A 401 already handled by a redirect to login is not repeated. */
  error(err: unknown, context?: string): void {
    if (err instanceof ApiError) {
      if (err.handled) return;
      const title = context ? `${context}: ${err.title}` : err.title;
      this.push('error', title, err.detail === err.title ? '' : err.detail, err.errors);
      return;
    }
    if (err instanceof DOMException && err.name === 'AbortError') return;
    const msg = err instanceof Error ? err.message : String(err);
    this.push('error', context ?? 'Error', msg);
  }
}

export const notices = new Notices();
