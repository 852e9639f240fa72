#!/bin/bash
# tests/tls/testssl_run.sh - run testssl.sh (Debian package testssl.sh) against
# mtad's STARTTLS port and fail on any finding rated HIGH or CRITICAL.
#   make testssl            (builds mtad first)
#   MTAD=build/asan/mtad tests/tls/testssl_run.sh
# mtad runs on loopback with a fresh key (EC P-256 by default, KEY=rsa for
# RSA 2048) signed by a throw-away CA; the JSON report is kept in $WORK.
# Bounded: testssl.sh gets at most TESTSSL_TIMEOUT seconds (default 600).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MTAD=${MTAD:-$ROOT/build/mtad}
case "$MTAD" in /*) ;; *) MTAD=$ROOT/$MTAD ;; esac
KEY=${KEY:-ec}
WORK=${WORK:-$(mktemp -d /tmp/mtad-testssl.XXXXXX)}
TESTSSL=${TESTSSL:-$(command -v testssl || command -v testssl.sh || true)}
[ -n "$TESTSSL" ] || { echo "testssl.sh is not installed (apt-get install testssl.sh)" >&2; exit 1; }
[ -x "$MTAD" ] || { echo "no $MTAD: run make" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PID=""
trap '[ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null; wait 2>/dev/null || true' EXIT

mkdir -p "$WORK/keys" "$WORK/data"
chmod 755 "$WORK"
# a certificate testssl.sh has nothing to say about: trusted (--add-ca), valid for 90
# days, with a CRL URI (never fetched: testssl does not phone out)
. "$ROOT/tests/tls/make_certs.sh"
make_certs "$WORK/keys" "$KEY" localhost 90 \
	'extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\ncrlDistributionPoints=URI:http://127.0.0.1/testssl-ca.crl\n'

PORT=$(free_port) SPORT=$(free_port) UI=$(free_port)
cat > "$WORK/mtad.conf" <<CF
data_dir = $WORK/data
smtp_listen = 127.0.0.1:$PORT
smtps_listen = 127.0.0.1:$SPORT
ui_address = 127.0.0.1
ui_port = $UI
smtpd_trusted_networks = 127.0.0.1
hostname = localhost
dns_servers = 127.0.0.1:1
ssl_disabled = no
key_dir = $WORK/keys
ssl_key_file = server.key
ssl_cert_file = server.pem
mail_owner = nobody
CF
"$MTAD" -c "$WORK/mtad.conf" > "$WORK/mtad.out" 2>&1 < /dev/null &
PID=$!
for i in $(seq 1 100); do
	(exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
	sleep 0.05
done

echo "testssl: $TESTSSL --starttls smtp 127.0.0.1:$PORT (report: $WORK/testssl.json)"
rc=0
timeout "${TESTSSL_TIMEOUT:-600}" "$TESTSSL" --quiet --color 0 --warnings off --ip one \
	--add-ca "$WORK/keys/ca.pem" --starttls smtp --sneaky --jsonfile "$WORK/testssl.json" "127.0.0.1:$PORT" \
	> "$WORK/testssl.txt" 2>&1 || rc=$?
# testssl.sh's exit status counts findings of any severity; the JSON decides
[ -s "$WORK/testssl.json" ] || { echo "testssl produced no report (exit $rc)" >&2; tail -30 "$WORK/testssl.txt" >&2; exit 1; }
python3 - "$WORK/testssl.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
count = {}
bad = []
for r in rows:
    sev = r.get("severity", "")
    count[sev] = count.get(sev, 0) + 1
    if sev in ("HIGH", "CRITICAL"):
        bad.append("%s %s: %s" % (sev, r.get("id"), r.get("finding")))
    if r.get("id") == "scanProblem" or sev == "FATAL":
        bad.append("%s %s: %s" % (sev, r.get("id"), r.get("finding")))
print("testssl findings by severity:", ", ".join("%s=%d" % kv for kv in sorted(count.items())))
for r in rows:
    if r.get("severity") in ("MEDIUM", "LOW"):
        print("  %s %s: %s" % (r["severity"], r.get("id"), r.get("finding")))
if bad:
    print("FAIL: findings rated HIGH or CRITICAL:")
    for b in bad:
        print("  " + b)
    sys.exit(1)
print("OK: no finding rated HIGH or CRITICAL")
PY
