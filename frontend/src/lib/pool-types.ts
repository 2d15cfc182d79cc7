// What the pool form asks for each libvirt pool type: the same rules the provisioner checks
// (services/provisioner/storage_spec.py TYPES), so the form shows only the fields a type uses.

export type SourceField =
  | 'host'
  | 'port'
  | 'dir'
  | 'name'
  | 'devices'
  | 'format'
  | 'adapter'
  | 'initiator'
  | 'auth_username'
  | 'auth_secret_uuid';

export interface PoolTypeSpec {
  type: string;
  label: string;
  note: string;
  /** 'required', a default shown as placeholder, or null when the type has no target */
  target: 'required' | string | null;
  needs: SourceField[];
  allows: SourceField[];
  formats: string[];
  /** the build checkbox's meaning for this type */
  build: string;
}

export const POOL_TYPES: PoolTypeSpec[] = [
  { type: 'dir', label: 'Directory', note: 'A directory on the host.', target: 'required', needs: [], allows: [],
    formats: [], build: 'create the directory' },
  { type: 'fs', label: 'Filesystem on a device', note: 'A block device with a filesystem, mounted on the target directory.',
    target: 'required', needs: ['devices'], allows: ['format'],
    formats: ['auto', 'ext2', 'ext3', 'ext4', 'ufs', 'iso9660', 'udf', 'gfs', 'gfs2', 'vfat', 'hfs+', 'xfs', 'ocfs2', 'vmfs'],
    build: 'create the mount directory (with "overwrite": also make the filesystem)' },
  { type: 'netfs', label: 'Network filesystem (NFS, CIFS)', note: 'An export mounted on the target directory.',
    target: 'required', needs: ['host', 'dir'], allows: ['port', 'format'], formats: ['nfs', 'auto', 'glusterfs', 'cifs'],
    build: 'create the mount directory' },
  { type: 'logical', label: 'LVM volume group', note: 'Volumes are logical volumes. Give devices to make a new group.',
    target: '/dev/<group>', needs: [], allows: ['name', 'devices'], formats: [],
    build: 'make the volume group on the devices (only on empty devices unless "overwrite")' },
  { type: 'disk', label: 'Whole disk (partitions)', note: 'Volumes are partitions of the disk.', target: '/dev',
    needs: ['devices'], allows: ['format'], formats: ['gpt', 'dos', 'dvh', 'mac', 'bsd', 'pc98', 'sun', 'lvm2'],
    build: 'write a partition table (only on an empty disk unless "overwrite")' },
  { type: 'iscsi', label: 'iSCSI target', note: 'LUNs of an iSCSI target.', target: '/dev/disk/by-path',
    needs: ['host', 'devices'], allows: ['port', 'initiator', 'auth_username', 'auth_secret_uuid'], formats: [], build: '' },
  { type: 'iscsi-direct', label: 'iSCSI (libiscsi)', note: 'An iSCSI target used directly by QEMU.', target: null,
    needs: ['host', 'devices', 'initiator'], allows: ['port'], formats: [], build: '' },
  { type: 'scsi', label: 'SCSI host adapter', note: 'LUNs of a SCSI host adapter.', target: '/dev/disk/by-path',
    needs: ['adapter'], allows: [], formats: [], build: '' },
  { type: 'mpath', label: 'Multipath devices', note: 'All multipath devices of the host.', target: '/dev/mapper',
    needs: [], allows: [], formats: [], build: '' },
  { type: 'rbd', label: 'Ceph RBD', note: 'A Ceph pool; the key is a libvirt secret.', target: null,
    needs: ['host', 'name'], allows: ['port', 'auth_username', 'auth_secret_uuid'], formats: [], build: '' },
  { type: 'gluster', label: 'GlusterFS (libgfapi)', note: 'A GlusterFS volume.', target: null, needs: ['host', 'name'],
    allows: ['port', 'dir'], formats: [], build: '' },
  { type: 'zfs', label: 'ZFS pool', note: 'A zpool; devices make a new one.', target: null, needs: ['name'],
    allows: ['devices'], formats: [], build: 'make the zpool on the devices' },
  { type: 'vstorage', label: 'Virtuozzo storage', note: 'A Virtuozzo storage cluster.', target: 'required',
    needs: ['name'], allows: [], formats: [], build: '' },
];

export const FIELD_LABELS: Record<SourceField, { label: string; placeholder: string; help?: string }> = {
  host: { label: 'Server', placeholder: 'nas.example.lan or 192.0.2.10' },
  port: { label: 'Port', placeholder: 'default' },
  dir: { label: 'Exported directory', placeholder: '/exports/images' },
  name: { label: 'Name', placeholder: '' },
  devices: { label: 'Devices', placeholder: '/dev/sdb', help: 'one per line' },
  format: { label: 'Format', placeholder: '' },
  adapter: { label: 'Adapter', placeholder: 'host0' },
  initiator: { label: 'Initiator IQN', placeholder: 'iqn.2024-01.lan.example:host1' },
  auth_username: { label: 'User name', placeholder: '' },
  auth_secret_uuid: { label: 'Secret UUID', placeholder: 'libvirt secret holding the key' },
};

/** The source "name" means something different per type. */
export function nameLabel(type: string): string {
  return (
    { logical: 'Volume group', rbd: 'Ceph pool', gluster: 'Gluster volume', zfs: 'zpool', vstorage: 'Cluster' }[type] ??
    'Name'
  );
}

export function devicesLabel(type: string): string {
  if (type === 'iscsi' || type === 'iscsi-direct') return 'Target IQN';
  if (type === 'logical' || type === 'zfs') return 'Devices (one per line)';
  return 'Device';
}

export function specOf(type: string): PoolTypeSpec {
  return POOL_TYPES.find((t) => t.type === type) ?? POOL_TYPES[0];
}
