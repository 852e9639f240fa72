#!/bin/sh
# peers_setup.sh - unpack Exim for the interoperability tests (needs root)
#
# usage: tools/peers_setup.sh            (run by .ci/deps.sh; idempotent)
#
# tests/e2e/test_interop_exim.py runs Exim 4 from Debian's exim4-daemon-light
# package, but that package cannot be installed beside postfix (it removes
# it; never `apt-get install exim4*`). So the .debs are only downloaded
# (apt-get download) and unpacked (dpkg -x) into $PEERS_DIR/exim (default
# /opt/peers/exim), where tests/e2e/peers.py finds them, and what the
# package's maintainer scripts would have done is done here: the
# Debian-exim user and Exim's runtime library libidn12. Nothing goes to
# /etc or /usr/sbin; the tests mount the unpacked files in a private mount
# namespace. Exits 0 when Exim is already there; 1 when it cannot be set up
# (the Exim tests then skip with the reason).
set -u
PEERS_DIR=${PEERS_DIR:-/opt/peers}
dir=$PEERS_DIR/exim
[ -x "$dir/usr/sbin/exim4" ] && id Debian-exim >/dev/null 2>&1 && exit 0
[ "$(id -u)" -eq 0 ] || { echo "peers_setup.sh: needs root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
if ! dpkg-query -W -f='${Status}' libidn12 2>/dev/null | grep -q "ok installed"; then
  apt-get install -y -qq libidn12 >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libidn12 >/dev/null; } ||
    { echo "peers_setup.sh: cannot install libidn12" >&2; exit 1; }
fi
if [ ! -x "$dir/usr/sbin/exim4" ]; then
  debs=$(mktemp -d) || exit 1
  trap 'rm -rf "$debs"' EXIT
  for p in exim4-base exim4-config exim4-daemon-light; do
    (cd "$debs" && apt-get download "$p" >/dev/null 2>&1) ||
      (apt-get update -qq >/dev/null 2>&1 && cd "$debs" && apt-get download "$p" >/dev/null 2>&1) ||
      { echo "peers_setup.sh: cannot download $p" >&2; exit 1; }
  done
  mkdir -p "$dir.tmp"
  for d in "$debs"/*.deb; do dpkg -x "$d" "$dir.tmp" || exit 1; done
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
id Debian-exim >/dev/null 2>&1 || adduser --system --group --quiet --home /var/spool/exim4 \
  --no-create-home --disabled-login --force-badname Debian-exim || exit 1
echo "exim unpacked in $dir"
