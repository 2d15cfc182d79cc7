// Firewall: rulesets (global, revision-checked with If-Match), macros, a VM's firewall, a host's nwfilters.

import { api } from './api';

export type Direction = 'in' | 'out';
export type RuleAction = 'accept' | 'drop' | 'reject';
export type Protocol = 'tcp' | 'udp' | 'icmp' | 'all';
export type Policy = 'accept' | 'drop';

export interface Rule {
  direction: Direction;
  action: RuleAction;
  protocol: Protocol | null;
  ports: string | number | (string | number)[] | null;
  source: string | null;
  destination: string | null;
  macro: string | null;
  comment: string;
  enabled: boolean;
}

export interface VMRef {
  host: string;
  id: string;
  name: string;
}

export interface Ruleset {
  name: string;
  description: string;
  rules: Rule[];
  created_at: number;
  updated_at: number;
  updated_by: string;
  revision: number;
  used_by: VMRef[];
}

export interface RulesetBody {
  name?: string;
  description: string;
  rules: Rule[];
}

export interface MacroEntry {
  protocol: Protocol;
  ports: string | null;
  icmp_type: number | null;
}

export interface Macro {
  name: string;
  description: string;
  entries: MacroEntry[];
}

export interface VMFirewallSettings {
  rulesets: string[];
  anti_spoofing: boolean;
  default_policy: Policy;
  addresses: Record<string, string[]>;
}

export interface NicFirewall {
  mac: string;
  type: string | null;
  source: string | null;
  filter: string | null;
  attached: boolean;
  live: boolean | null;
  ip_addresses: string[];
  note: string;
}

export interface VMFirewall {
  id: string;
  name: string;
  host: string;
  settings: VMFirewallSettings;
  nics: NicFirewall[];
  missing_rulesets: string[];
}

export interface NWFilterInfo {
  name: string;
  uuid: string;
  chain: string | null;
  priority: number | null;
  owner: 'libvirt' | 'flint-ruleset' | 'flint-vm' | 'other';
  references: string[];
  rules: number;
  xml: string;
}

const rs = (name: string) => `/firewall/rulesets/${encodeURIComponent(name)}`;

export const listRulesets = () => api.get<Ruleset[]>('/firewall/rulesets');
export const getRuleset = (name: string) => api.get<Ruleset>(rs(name));
export const createRuleset = (body: RulesetBody) => api.post<Ruleset>('/firewall/rulesets', body);
/** Needs the revision the edit started from: a 412 means somebody else saved meanwhile. */
export const updateRuleset = (name: string, body: RulesetBody, revision: number) =>
  api.put<Ruleset>(rs(name), body, { headers: { 'If-Match': `"${revision}"` } });
export const deleteRuleset = (name: string) => api.del<void>(rs(name));
export const listMacros = () => api.get<Macro[]>('/firewall/macros');
export const getVMFirewall = (id: string) => api.get<VMFirewall>(`/vms/${encodeURIComponent(id)}/firewall`);
export const setVMFirewall = (id: string, settings: VMFirewallSettings) =>
  api.put<VMFirewall>(`/vms/${encodeURIComponent(id)}/firewall`, settings);
export const listNWFilters = (host: string) =>
  api.get<{ host: string; filters: NWFilterInfo[] }>(`/hosts/${encodeURIComponent(host)}/nwfilters`);

export function newRule(): Rule {
  return {
    direction: 'in',
    action: 'accept',
    protocol: 'tcp',
    ports: '',
    source: null,
    destination: null,
    macro: null,
    comment: '',
    enabled: true,
  };
}

/** What the API wants: empty text fields left out, ports only where they mean something. */
export function cleanRule(r: Rule): Rule {
  const text = (v: unknown) => (typeof v === 'string' ? v.trim() : v == null ? '' : String(v));
  const ports = r.macro ? '' : text(r.ports);
  return {
    direction: r.direction,
    action: r.action,
    protocol: r.macro ? null : r.protocol,
    ports: ports === '' ? null : ports,
    source: text(r.source) || null,
    destination: text(r.destination) || null,
    macro: r.macro || null,
    comment: text(r.comment),
    enabled: r.enabled,
  };
}

export function describeRule(r: Rule): string {
  const what = r.macro ?? [r.protocol ?? 'all', r.ports ?? ''].join(' ').trim();
  const parts = [r.direction, r.action, what];
  if (r.source) parts.push('from', r.source);
  if (r.destination) parts.push('to', r.destination);
  return parts.join(' ');
}
