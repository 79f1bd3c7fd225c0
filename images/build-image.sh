#!/bin/sh
# Build the ΔiFronte PC root file system (Debian bookworm) as a tarball.
#   images/build-image.sh --wheel dist/difronte-X-py3-none-any.whl [--arch amd64|i386] [--out FILE]
# Needs root and mmdebstrap. Prints each step.
set -eu

HERE=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
ARCH=amd64
OUT=difronte-edge.tar
WHEEL=""
MIRROR=${DIFRONTE_MIRROR:-http://deb.debian.org/debian}

while [ $# -gt 0 ]; do
    case "$1" in
        --wheel) WHEEL=$2; shift 2 ;;
        --arch) ARCH=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
[ -n "$WHEEL" ] || { echo "--wheel is required (build it with: python -m pip wheel --no-deps -w dist .)" >&2; exit 2; }
[ -f "$WHEEL" ] || { echo "no such wheel: $WHEEL" >&2; exit 2; }
command -v mmdebstrap >/dev/null || { echo "install mmdebstrap first" >&2; exit 2; }

case "$ARCH" in
    amd64) KERNEL=linux-image-amd64 ;;
    i386) KERNEL=linux-image-686-pae ;;
    *) echo "--arch must be amd64 or i386" >&2; exit 2 ;;
esac

PACKAGES="systemd-sysv $KERNEL grub-pc network-manager openssh-server sudo python3 python3-venv \
wireguard-tools smartmontools dmidecode util-linux alsa-utils pipewire pipewire-pulse \
wireplumber v4l-utils cage fonts-dejavu-core ca-certificates chrony"
VERSION=$(basename "$WHEEL" | cut -d- -f2)

echo "[image] building bookworm/$ARCH with difronte $VERSION into $OUT"
mmdebstrap --arch="$ARCH" --variant=important --include="$(echo $PACKAGES | tr ' ' ',')" \
    --customize-hook="mkdir -p \"\$1/opt/difronte/wheels\" \"\$1/etc/difronte\"" \
    --customize-hook="copy-in $WHEEL /opt/difronte/wheels/" \
    --customize-hook="chroot \"\$1\" python3 -m venv /opt/difronte/venvs/$VERSION" \
    --customize-hook="chroot \"\$1\" /opt/difronte/venvs/$VERSION/bin/pip install /opt/difronte/wheels/$(basename "$WHEEL")[edge]" \
    --customize-hook="chroot \"\$1\" ln -sfn /opt/difronte/venvs/$VERSION /opt/difronte/current" \
    --customize-hook="copy-in $HERE/files/difronte-edge.service $HERE/files/difronte-firstboot.service /etc/systemd/system/" \
    --customize-hook="copy-in $HERE/files/difronte-firstboot /usr/local/sbin/" \
    --customize-hook="mkdir -p \"\$1/etc/pipewire/pipewire.conf.d\"" \
    --customize-hook="copy-in $HERE/files/99-difronte-echo-cancel.conf /etc/pipewire/pipewire.conf.d/" \
    --customize-hook="copy-in $HERE/files/adjtime /etc/" \
    --customize-hook="chroot \"\$1\" systemctl enable difronte-firstboot.service difronte-edge.service" \
    bookworm "$OUT" "$MIRROR"
echo "[image] done: $OUT ($(du -h "$OUT" | cut -f1))"
