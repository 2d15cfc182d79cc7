// The create-VM wizard's network-install and PXE sources: the fields, their checks (the provisioner's rules)
// and the `source` of the POST /api/v1/vms body.

export interface InstallForm {
  /** The install tree: the directory that holds .treeinfo (Fedora, RHEL, CentOS, openSUSE, ...). */
  location: string;
  /** Optional explicit URLs, instead of the tree's files. */
  kernel: string;
  initrd: string;
  /** The installer's kernel command line, e.g. inst.ks=http://…/ks.cfg console=ttyS0 */
  kernel_args: string;
  /** PXE: boot from a libvirt network or a host bridge. */
  pxe_kind: 'network' | 'bridge';
  pxe_name: string;
}

export function newInstallForm(): InstallForm {
  return { location: '', kernel: '', initrd: '', kernel_args: '', pxe_kind: 'network', pxe_name: '' };
}

const URL_RE = /^https?:\/\/[^\s/$.?#][^\s]*$/i;

function checkUrl(v: string, what: string): string {
  if (!v) return '';
  if (!URL_RE.test(v)) return `${what} must be an http:// or https:// address.`;
  if (/^https?:\/\/[^/]*@/i.test(v)) return 'No user name or password in the address (it would be stored with the job).';
  return '';
}

/** Problems keyed by request field ('source.location', 'source.kernel', 'source.network', ...). */
export function checkInstall(kind: string, f: InstallForm): Record<string, string> {
  const e: Record<string, string> = {};
  if (kind === 'network_install') {
    if (!f.location.trim() && !f.kernel.trim()) e['source.location'] = "The install tree's URL (where .treeinfo is), or a kernel URL.";
    const loc = checkUrl(f.location.trim(), 'The install tree');
    if (loc) e['source.location'] = loc;
    const k = checkUrl(f.kernel.trim(), 'The kernel');
    if (k) e['source.kernel'] = k;
    const i = checkUrl(f.initrd.trim(), 'The initrd');
    if (i) e['source.initrd'] = i;
    if (f.kernel_args.length > 4096 || /[\r\n]/.test(f.kernel_args)) e['source.kernel_args'] = 'One line, at most 4096 characters.';
  } else if (kind === 'pxe' && !f.pxe_name.trim()) {
    e[`source.${f.pxe_kind}`] = `Choose the ${f.pxe_kind === 'network' ? 'network' : 'bridge'} to boot from.`;
  }
  return e;
}

export function installSource(kind: string, f: InstallForm): Record<string, unknown> {
  if (kind === 'pxe') return { kind, [f.pxe_kind]: f.pxe_name.trim() };
  const s: Record<string, unknown> = { kind, location: f.location.trim(), kernel_args: f.kernel_args.trim() };
  if (f.kernel.trim()) s.kernel = f.kernel.trim();
  if (f.initrd.trim()) s.initrd = f.initrd.trim();
  return s;
}
