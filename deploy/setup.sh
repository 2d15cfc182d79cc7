#!/usr/bin/env bash
# Flint setup: installs and starts whatever is missing, skips whatever is done.
#   bash deploy/setup.sh             Debian/Ubuntu packages, libvirtd running, .venv/, built frontend
#   bash deploy/setup.sh --with-test  the same plus what the test tiers need (chromium)
# Idempotent: a second run only checks (dpkg status, pid files, stamps, mtimes) and takes seconds.
# Environment: FLINT_PYTHON=python3.12 chooses the interpreter for a new .venv;
#              FLINT_LIBVIRTD_WAIT=60 seconds to wait for libvirtd's first answer.
set -euo pipefail

T0=$(date +%s%N)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
FE="$ROOT/frontend"
LIBVIRT_URI=qemu:///system
WITH_TEST=0

ok() { printf 'ok: %s\n' "$*"; }
did() { printf 'done: %s\n' "$*"; }
warn() { printf 'warn: %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
elapsed() { local now; now=$(date +%s%N); awk -v a="$1" -v b="$now" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

for arg in "$@"; do
  case "$arg" in
    --with-test) WITH_TEST=1 ;;
    -h | --help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$arg' (known: --with-test, --help)" ;;
  esac
done

CLEANUP=()
cleanup() { local c; for c in "${CLEANUP[@]}"; do eval "$c" || true; done; }
trap cleanup EXIT

# ---------------------------------------------------------------- distribution and root
OS_ID=unknown OS_LIKE="" OS_NAME=unknown
if [[ -r /etc/os-release ]]; then
  # shellcheck disable=SC1091
  OS_ID=$(. /etc/os-release && echo "${ID:-unknown}")
  OS_LIKE=$(. /etc/os-release && echo "${ID_LIKE:-}")
  OS_NAME=$(. /etc/os-release && echo "${PRETTY_NAME:-$OS_ID}")
fi
case " $OS_ID $OS_LIKE " in
  *" debian "* | *" ubuntu "*) ;;
  *)
    cat >&2 <<EOF
FAIL: $OS_NAME is not Debian or Ubuntu: this script only knows apt. Install these yourself, then start
      virtlogd and libvirtd, create .venv (python3 >= 3.11 -m venv .venv && .venv/bin/pip install -e '.[test]')
      and build the frontend (cd frontend && npm ci && npm run build):
  Fedora/RHEL (dnf install):
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-config-nwfilter libvirt-client libvirt-devel
    pkgconf-pkg-config gcc qemu-system-x86-core qemu-img ipxe-roms-qemu ipxe-bootimgs-x86 edk2-ovmf
    iptables-nft ebtables-legacy nats-server python3 python3-devel nodejs npm docker-compose
    openssh-server openssh-clients chromium
  Arch (pacman -S):
    libvirt pkgconf gcc qemu-base qemu-img edk2-ovmf iptables-nft nats-server python nodejs npm
    docker-compose openssh chromium   (ipxe: from the AUR)
  Debian names, for other distributions:
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-config-nwfilter libvirt-clients libvirt-dev
    pkg-config gcc qemu-system-x86 qemu-utils ipxe-qemu ipxe ovmf iptables ebtables nats-server
    python3-venv nodejs npm docker-compose openssh-server openssh-client chromium
Minimum versions: libvirt 8.0.0, Python 3.11, Node.js 20.19.
EOF
    exit 1
    ;;
esac
[[ $EUID -eq 0 ]] || die "run as root (sudo make run): setup installs packages and starts libvirtd"

HAVE_SYSTEMD=0
[[ -d /run/systemd/system ]] && HAVE_SYSTEMD=1

# ---------------------------------------------------------------- python for a new .venv
venv_ok() {
  [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
find_python() {
  local c
  for c in ${FLINT_PYTHON:-} python3 python3.13 python3.12 python3.11; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$c"
      return 0
    fi
  done
  return 1
}
PYTHON=""
NEED_VENV=0
venv_ok || NEED_VENV=1
if ((NEED_VENV)); then PYTHON=$(find_python || true); fi

# ---------------------------------------------------------------- apt packages
PKGS=(
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-config-nwfilter libvirt-clients libvirt-dev
  pkg-config gcc qemu-system-x86 qemu-utils ipxe-qemu ipxe ovmf iptables ebtables nats-server
  docker-compose openssh-server openssh-client
)
# systemd hosts need the unit files, which only libvirt-daemon-system ships.
((HAVE_SYSTEMD)) && PKGS+=(libvirt-daemon-system)
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
if ((NEED_VENV)); then
  if [[ -z $PYTHON ]]; then
    PKGS+=(python3 python3-venv python3-dev) # Debian 12: 3.11; Ubuntu 22.04's 3.10 is caught below
  else
    # venv needs ensurepip (python3-venv on Debian); libvirt-python builds against Python.h.
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || PKGS+=(python3-venv)
    "$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null ||
      PKGS+=(python3-dev)
  fi
fi
if ((WITH_TEST)); then
  PKGS+=(lvm2 parted) # storage e2e: logical and disk pools on loop devices (libvirt runs vgcreate, parted)
  if [[ $OS_ID == ubuntu ]] && [[ ! -x /usr/bin/chromium ]]; then
    warn "Ubuntu ships Chromium only as a snap: browser tests need /usr/bin/chromium (install it, or link it there)"
  else
    PKGS+=(chromium)
  fi
fi

MISSING=()
declare -A INSTALLED=()
while IFS=$'\t' read -r name status; do
  [[ $status == ii* ]] && INSTALLED[$name]=1
done < <(dpkg-query -W -f='${Package}\t${db:Status-Abbrev}\n' "${PKGS[@]}" 2>/dev/null || true)
for p in "${PKGS[@]}"; do
  [[ -n ${INSTALLED[$p]:-} ]] || MISSING+=("$p")
done

JUST_INSTALLED=" "
if ((${#MISSING[@]} == 0)); then
  ok "${#PKGS[@]} apt packages installed"
else
  t=$(date +%s%N)
  echo "installing: ${MISSING[*]}"
  # Keep packages from starting their daemons (nats-server would take port 4222 from `flint up`,
  # libvirt's default NAT network must not come up): we start what we need ourselves.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    CLEANUP+=("rm -f /usr/sbin/policy-rc.d")
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef \
    -o Dpkg::Options::=--force-confold "${MISSING[@]}" >/tmp/flint-apt.log 2>&1 ||
    { tail -n 30 /tmp/flint-apt.log >&2; die "apt-get install failed (full log: /tmp/flint-apt.log)"; }
  JUST_INSTALLED=" ${MISSING[*]} "
  did "installed ${#MISSING[@]} apt packages in $(elapsed "$t") s"
fi

if ((HAVE_SYSTEMD)); then
  # Packages installed now must not come up at boot where they get in Flint's way.
  if [[ $JUST_INSTALLED == *" nats-server "* ]]; then
    systemctl disable --now nats-server >/dev/null 2>&1 || true
    did "disabled the distribution's nats-server service (flint up runs its own on 127.0.0.1:4222)"
  fi
  if [[ $JUST_INSTALLED == *" libvirt-daemon-system "* ]] && [[ -e /etc/libvirt/qemu/networks/autostart/default.xml ]]; then
    rm -f /etc/libvirt/qemu/networks/autostart/default.xml
    did "libvirt's 'default' NAT network will not autostart"
  fi
fi

# ---------------------------------------------------------------- libvirtd
virsh_q() { timeout 10 virsh -q -c "$LIBVIRT_URI" "$@" </dev/null 2>/dev/null; }
daemon_alive() { # $1 = name, $2 = pid file
  local pid
  [[ -r $2 ]] && pid=$(<"$2") && [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/comm ]] &&
    [[ $(<"/proc/$pid/comm") == "$1" ]]
}
qemu_conf_set() { # $1 = key, $2 = value; true when the file changed
  local conf=/etc/libvirt/qemu.conf line="$1 = \"$2\""
  if [[ ! -f $conf ]]; then
    mkdir -p /etc/libvirt
    printf '# Written by Flint deploy/setup.sh: /dev/kvm is root-only without udev.\n' >"$conf"
  fi
  grep -qx "$line" "$conf" && return 1
  if grep -qE "^[[:space:]]*$1[[:space:]]*=" "$conf"; then
    sed -i -E "s|^[[:space:]]*$1[[:space:]]*=.*|$line|" "$conf"
  else
    printf '%s\n' "$line" >>"$conf"
  fi
  return 0
}

t=$(date +%s%N)
STARTED=0
if ((HAVE_SYSTEMD)); then
  if ! systemctl is-active --quiet libvirtd || ! systemctl is-enabled --quiet libvirtd; then
    systemctl enable --now libvirtd virtlogd || die "systemctl enable --now libvirtd virtlogd failed"
    STARTED=1
  fi
else
  if ! getent passwd libvirt-qemu >/dev/null; then
    # libvirtd refuses to start its QEMU driver without it, even when qemu.conf says root.
    getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
    useradd --system --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin \
      --gid libvirt-qemu libvirt-qemu
    did "created system user libvirt-qemu"
  fi
  mkdir -p /var/log/libvirt/qemu
  CONF_CHANGED=0
  if [[ -e /dev/kvm ]]; then
    kvm_mode=$(stat -c '%a %G' /dev/kvm)
    read -r mode group <<<"$kvm_mode"
    # root-only: no access for others, and the group is root or has no rw either
    if (( (8#$mode & 8#006) == 0 )) && { [[ $group == root ]] || (( (8#$mode & 8#060) == 0 )); }; then
      qemu_conf_set user root && CONF_CHANGED=1
      qemu_conf_set group root && CONF_CHANGED=1
      ((CONF_CHANGED)) && did "qemu.conf: QEMU runs as root (/dev/kvm is $mode $group; avoids a capability re-probe per VM start)"
    fi
  fi
  if ! daemon_alive virtlogd /run/virtlogd.pid; then
    virtlogd -d </dev/null >/dev/null 2>&1 || die "virtlogd -d failed to start"
    did "started virtlogd"
  fi
  if ! daemon_alive libvirtd /run/libvirtd.pid; then
    rm -f /run/libvirtd.pid
    libvirtd -d </dev/null >>/var/log/libvirt/flint-libvirtd-start.log 2>&1 ||
      die "libvirtd -d failed to start (see /var/log/libvirt/flint-libvirtd-start.log)"
    STARTED=1
  elif ((CONF_CHANGED)); then
    warn "libvirtd was already running: restart it to apply /etc/libvirt/qemu.conf"
  fi
fi

WAIT=${FLINT_LIBVIRTD_WAIT:-60}
deadline=$(($(date +%s) + WAIT))
until VERSION_OUT=$(virsh_q version --daemon); do
  (($(date +%s) < deadline)) || die "libvirtd does not answer at $LIBVIRT_URI after ${WAIT} s (virsh -c $LIBVIRT_URI version; log: /var/log/libvirt/)"
  sleep 0.5
done
LV=$(awk -F': *' '/Running against daemon/ { sub(/^[^0-9]*/, "", $2); print $2 }' <<<"$VERSION_OUT")
HV=$(awk -F': *' '/Running hypervisor/ { print $2 }' <<<"$VERSION_OUT")
if ((STARTED)); then
  did "libvirtd started (libvirt ${LV:-?}, ${HV:-no hypervisor}) in $(elapsed "$t") s"
else
  ok "libvirtd running (libvirt ${LV:-?}, ${HV:-no hypervisor})"
fi
if NWF=$(virsh_q nwfilter-list); then
  ok "nwfilter driver ($(grep -c . <<<"$NWF") filters)"
else
  warn "nwfilter driver not answering (virsh nwfilter-list): install libvirt-daemon-config-nwfilter, restart libvirtd"
fi

# ---------------------------------------------------------------- .venv
STAMP="$VENV/.flint-pip-stamp"
if ((NEED_VENV)); then
  t=$(date +%s%N)
  [[ -n $PYTHON ]] || PYTHON=$(find_python) ||
    die "no Python >= 3.11 found (Ubuntu 22.04: apt-get install python3.11 python3.11-venv python3.11-dev, then FLINT_PYTHON=python3.11)"
  if [[ -e $VENV ]]; then
    warn "$VENV is broken or older than Python 3.11: recreating it"
    rm -rf "$VENV"
  fi
  "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv failed (Debian: apt-get install python3-venv)"
  did "created .venv with $("$VENV/bin/python" -V 2>&1) in $(elapsed "$t") s"
fi
if [[ ! -f $STAMP ]] || [[ $ROOT/pyproject.toml -nt $STAMP ]]; then
  t=$(date +%s%N)
  PIP_LOG=/tmp/flint-pip.log
  (cd "$ROOT" && "$VENV/bin/python" -m pip install --disable-pip-version-check -e '.[test]') >"$PIP_LOG" 2>&1 ||
    { tail -n 25 "$PIP_LOG" >&2; die "pip install -e '.[test]' failed (log: $PIP_LOG; libvirt-python builds from source: needs gcc, pkg-config, libvirt-dev)"; }
  touch "$STAMP"
  did "pip install -e '.[test]' in $(elapsed "$t") s"
else
  ok ".venv up to date ($("$VENV/bin/python" -V 2>&1))"
fi

# ---------------------------------------------------------------- frontend
if [[ ! -f $FE/package.json ]]; then
  warn "frontend/package.json missing: frontend not built"
else
  if node_v=$(node -p 'process.versions.node' 2>/dev/null); then
    IFS=. read -r nmaj nmin _ <<<"$node_v"
    if ((nmaj < 20 || (nmaj == 20 && nmin < 19))); then
      warn "Node.js $node_v is older than 20.19, which Vite needs: the frontend build may fail"
    fi
  else
    die "node not found after installing nodejs"
  fi
  NPM_STAMP="$FE/node_modules/.flint-npm-stamp"
  NPM_LOG=/tmp/flint-npm.log
  npm_run() { (cd "$FE" && npm "$@") >"$NPM_LOG" 2>&1 || { tail -n 25 "$NPM_LOG" >&2; return 1; }; }
  if [[ ! -f $FE/package-lock.json ]]; then
    [[ ${CI:-} == true ]] && die "frontend/package-lock.json missing: commit it (npm install writes it)"
    warn "frontend/package-lock.json missing: running npm install, which writes it (commit it)"
    t=$(date +%s%N)
    npm_run install --no-audit --no-fund || die "npm install failed in frontend/ (log: $NPM_LOG)"
    touch "$NPM_STAMP"
    did "npm install in $(elapsed "$t") s"
  elif [[ ! -f $NPM_STAMP ]] || [[ $FE/package-lock.json -nt $NPM_STAMP ]] || [[ $FE/package.json -nt $NPM_STAMP ]]; then
    t=$(date +%s%N)
    npm_run ci --no-audit --no-fund || die "npm ci failed in frontend/ (log: $NPM_LOG)"
    touch "$NPM_STAMP"
    did "npm ci in $(elapsed "$t") s"
  else
    ok "frontend node_modules up to date"
  fi
  INPUTS=()
  for f in "$FE"/src "$FE"/public "$FE"/index.html "$FE"/package.json "$FE"/package-lock.json \
    "$FE"/vite.config.* "$FE"/svelte.config.* "$FE"/tsconfig*.json; do
    [[ -e $f ]] && INPUTS+=("$f")
  done
  if [[ ! -f $FE/dist/index.html ]] || [[ -n $(find "${INPUTS[@]}" -newer "$FE/dist/index.html" -print -quit 2>/dev/null) ]]; then
    t=$(date +%s%N)
    npm_run run build || die "npm run build failed in frontend/ (log: $NPM_LOG)"
    [[ -f $FE/dist/index.html ]] || die "npm run build did not write frontend/dist/index.html"
    touch "$FE/dist/index.html"
    did "frontend built in $(elapsed "$t") s"
  else
    ok "frontend/dist up to date"
  fi
fi

ok "setup finished in $(elapsed "$T0") s"
