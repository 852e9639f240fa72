#!/bin/sh
# Installs the Debian packages the build and the tests need, when missing.
set -e
pkgs="make gcc clang pkg-config libevent-dev libssl-dev libunbound-dev libcmocka-dev libjansson-dev
      python3 python3-pytest python3-pytest-xdist python3-aiosmtpd python3-dnslib swaks postfix pflogsumm openssl testssl.sh curl groff-base mandoc tzdata chromium nodejs"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq $missing >/dev/null
