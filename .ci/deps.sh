#!/bin/sh
# Installs the Debian packages the build and the tests need, when missing.
set -e
pkgs="make gcc clang pkg-config libevent-dev libssl-dev libunbound-dev libcmocka-dev libjansson-dev libcrypt-dev
      python3 python3-pytest python3-pytest-xdist python3-aiosmtpd python3-dnslib swaks postfix pflogsumm gcovr openssl testssl.sh curl groff-base mandoc tzdata chromium nodejs haproxy python3-yaml"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ -n "$missing" ]; then
  echo "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq $missing >/dev/null
fi
# Exim for the interoperability tests: unpacked, never installed (see the script).
$SUDO sh "$(dirname "$0")/../tools/peers_setup.sh" ||
  echo "warning: Exim is not set up; tests/e2e/test_interop_exim.py will be skipped" >&2
# The unprivileged user mtad runs as (mail_owner's default), as a package would
# create it: mtad refuses to start as root when mail_owner names no user.
if ! id mtad >/dev/null 2>&1; then
  $SUDO useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin mtad ||
    echo "warning: could not create the user mtad (set mail_owner)" >&2
fi
