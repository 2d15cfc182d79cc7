// Virtual networks and host interfaces (REST /hosts/{host}/networks..., /hosts/{host}/interfaces).

import { api } from './api';

export type NetworkMode = 'nat' | 'route' | 'isolated' | 'bridge' | 'macvtap';
export type MacvtapMode = 'bridge' | 'vepa' | 'private' | 'passthrough';
export type NetworkAction = 'start' | 'stop' | 'autostart' | 'noautostart';

export interface DhcpRange {
  start: string;
  end: string;
}

export interface DhcpHost {
  mac: string;
  ip: string;
  name?: string | null;
}

export interface IPv4 {
  address: string;
  dhcp_ranges: DhcpRange[];
  dhcp_hosts: DhcpHost[];
  tftp_root?: string | null;
  bootp_file?: string | null;
  bootp_server?: string | null;
}

export interface NetworkSpec {
  mode: NetworkMode;
  bridge?: string | null;
  interface?: string | null;
  macvtap_mode?: MacvtapMode;
  ipv4?: IPv4 | null;
  domain?: string | null;
  mtu?: number | null;
}

export interface NetworkCreateBody extends NetworkSpec {
  name: string;
  start?: boolean;
  autostart?: boolean;
}

export interface NetworkDetail {
  host: string;
  name: string;
  uuid: string;
  mode: string;
  active: boolean;
  autostart: boolean;
  persistent: boolean;
  bridge: string | null;
  interface: string | null;
  interfaces: string[];
  macvtap_mode: string | null;
  ipv4: IPv4 | null;
  domain: string | null;
  mtu: number | null;
  pending_restart: boolean;
  pxe: { ready: boolean; note: string };
  vms: string[];
}

/** The inventory's document of a network (the list, live over the event stream). */
export interface NetworkDoc {
  host: string;
  name: string;
  uuid?: string;
  active?: boolean;
  autostart?: boolean;
  persistent?: boolean;
  forward_mode?: string;
  mode?: string;
  bridge?: string | null;
  ip_address?: string | null;
  prefix?: number | null;
  dhcp?: boolean;
}

export interface HostInterface {
  name: string;
  type: string;
  mac: string | null;
  state: string;
  mtu: number | null;
  addresses: string[];
  bridge: string | null;
  members: string[];
  network: string | null;
}

export const MODES: { mode: NetworkMode; label: string; note: string }[] = [
  { mode: 'nat', label: 'NAT', note: 'A private subnet with DHCP and DNS; guests reach out through the host (NAT).' },
  { mode: 'route', label: 'Routed', note: 'A subnet with DHCP and DNS, routed (not NATed) to the host\'s networks.' },
  {
    mode: 'isolated',
    label: 'Isolated',
    note: 'Guests see only each other. With an address, libvirt serves DHCP and DNS on it; without, it is plain L2.',
  },
  { mode: 'bridge', label: 'Host bridge', note: 'Guests join an existing bridge of the host: the LAN behind it serves DHCP.' },
  { mode: 'macvtap', label: 'Macvtap', note: 'Guests attach directly to a host interface (macvtap); the host itself cannot reach them.' },
];

const enc = encodeURIComponent;
const netsPath = (host: string) => `/hosts/${enc(host)}/networks`;
const netPath = (host: string, name: string) => `${netsPath(host)}/${enc(name)}`;

export const listNetworks = (host: string) => api.get<NetworkDoc[]>(netsPath(host));
export const getNetwork = (host: string, name: string) => api.get<NetworkDetail>(netPath(host, name));
export const createNetwork = (host: string, body: NetworkCreateBody) => api.post<NetworkDetail>(netsPath(host), body);
export const updateNetwork = (host: string, name: string, body: NetworkSpec) =>
  api.put<NetworkDetail>(netPath(host, name), body);
export const deleteNetwork = (host: string, name: string, force = false) =>
  api.del<{ deleted: string }>(netPath(host, name), { query: { force } });
export const networkAction = (host: string, name: string, action: NetworkAction, force = false) =>
  api.post<NetworkDetail>(`${netPath(host, name)}/actions`, { action, force });
export const listInterfaces = (host: string) => api.get<HostInterface[]>(`/hosts/${enc(host)}/interfaces`);
