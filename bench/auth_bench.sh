#!/bin/bash
# bench/auth_bench.sh - SMTP AUTH logins per second with SHA-512 ($6$, 5000
# rounds) hashes, and what they cost the ordinary mail flowing at the same
# time, on loopback.
#
#   bench/auth_bench.sh                     # as root, after `make` and `make bench-tls-build`
#   C=20 T=20 N=5000 bench/auth_bench.sh
#
# One mtad with TLS, submission_listen and a users file, relaying to one
# smtp-sink. Runs, each bounded by T seconds (logins) or N messages (mail):
#   mail          smtp-source -s C -m N -l 5120 on smtp_listen (no TLS): msg/s
#   tls           build/bench/tls_load -x: connect, EHLO, STARTTLS, EHLO, QUIT
#                 on submission_listen: the TLS cost alone, sessions/s
#   auth          the same plus AUTH PLAIN (235): logins/s
#   auth+mail     auth and mail at once: both rates
# Server CPU per login/message from /proc as in tls_bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-5000}
C=${C:-20}
T=${T:-20}
WORK=${WORK:-/var/tmp/mtad-authbench}
MTAD=${MTAD:-$ROOT/build/mtad}
LOAD=${LOAD:-$ROOT/build/bench/tls_load}
HZ=$(getconf CLK_TCK)

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -x "$MTAD" ] || { echo "no $MTAD: run make" >&2; exit 1; }
[ -x "$LOAD" ] || { echo "no $LOAD: run make bench-tls-build" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
log() { echo "auth_bench: $*" >&2; }

SINK_PID="" MTAD_PID=""
cleanup() {
	[ -n "$MTAD_PID" ] && kill -TERM "$MTAD_PID" 2>/dev/null || true
	[ -n "$SINK_PID" ] && kill -TERM "$SINK_PID" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK/keys" "$WORK/mtad"
. "$ROOT/tests/tls/make_certs.sh"
make_certs "$WORK/keys" ec bench.localdomain 2
echo "app1:$(openssl passwd -6 app1-secret)" > "$WORK/keys/users"
chmod 600 "$WORK/keys/users"

SINK_PORT=$(free_port) SMTP_PORT=$(free_port) SUB_PORT=$(free_port) UI_PORT=$(free_port)
smtp-sink -u nobody -c -m 2048 "127.0.0.1:$SINK_PORT" 1024 > "$WORK/sink.out" 2>&1 &
SINK_PID=$!
cat > "$WORK/mtad/mtad.conf" <<CF
data_dir = $WORK/mtad/queue
smtp_listen = 127.0.0.1:$SMTP_PORT
smtps_listen =
submission_listen = 127.0.0.1:$SUB_PORT
smart_relay = [127.0.0.1]:$SINK_PORT
smtpd_trusted_networks = 127.0.0.0/8
ui_address = 127.0.0.1
ui_port = $UI_PORT
logs_enabled = no
hostname = bench.localdomain
mail_owner = nobody
ssl_disabled = no
key_dir = $WORK/keys
ssl_key_file = server.key
ssl_cert_file = server.pem
smtpd_users_file = users
CF
"$MTAD" -c "$WORK/mtad/mtad.conf" > "$WORK/mtad/mtad.out" 2>&1 < /dev/null &
MTAD_PID=$!
for p in "$SINK_PORT" "$SMTP_PORT" "$SUB_PORT"; do
	for i in $(seq 1 200); do
		(exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null && break
		sleep 0.05
	done
done

cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{print $12+$13+$14+$15}'
}

mail_run() {   # mail_run -> "msg/s"
	local t0 t1
	t0=$(date +%s.%N)
	smtp-source -s "$C" -m "$N" -l 5120 -f bench@example.com -t rcpt@dest.test \
		"127.0.0.1:$SMTP_PORT" > "$WORK/mail.source" 2>&1
	t1=$(date +%s.%N)
	awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.0f", n / (b - a) }'
}

login_run() {   # login_run [-A user:pw] -> tls_load's line
	"$LOAD" -c "$C" -n 1000000 -t "$T" -x "$@" "$SUB_PORT"
}

rate_of() { sed 's/.* rate=\([0-9.]*\).*/\1/' <<< "$1"; }
ok_of() { sed 's/.* ok=\([0-9]*\).*/\1/' <<< "$1"; }

log "C=$C T=${T}s N=$N; $("$MTAD" -V); users file: SHA-512 (openssl passwd -6, 5000 rounds)"
sleep 1
b=$(cpu_ticks "$MTAD_PID"); MAIL_ALONE=$(mail_run); a=$(cpu_ticks "$MTAD_PID")
MAIL_CPU=$(awk -v t=$((a - b)) -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.2f", 1000 * t / hz / n }')
log "mail alone: $MAIL_ALONE msg/s, $MAIL_CPU ms CPU/msg"
sleep 1
b=$(cpu_ticks "$MTAD_PID"); out=$(login_run); a=$(cpu_ticks "$MTAD_PID")
TLS_RATE=$(rate_of "$out")
TLS_CPU=$(awk -v t=$((a - b)) -v hz="$HZ" -v n="$(ok_of "$out")" 'BEGIN { printf "%.2f", n ? 1000 * t / hz / n : 0 }')
log "tls only: $out, $TLS_CPU ms CPU/session"
sleep 1
b=$(cpu_ticks "$MTAD_PID"); out=$(login_run -A app1:app1-secret); a=$(cpu_ticks "$MTAD_PID")
AUTH_RATE=$(rate_of "$out")
AUTH_CPU=$(awk -v t=$((a - b)) -v hz="$HZ" -v n="$(ok_of "$out")" 'BEGIN { printf "%.2f", n ? 1000 * t / hz / n : 0 }')
log "auth: $out, $AUTH_CPU ms CPU/login"
sleep 1
login_run -A app1:app1-secret > "$WORK/both.load" &
LP=$!
sleep 1
MAIL_BOTH=$(mail_run)
wait "$LP"
out=$(cat "$WORK/both.load")
BOTH_AUTH=$(rate_of "$out")
log "auth+mail: mail $MAIL_BOTH msg/s while $out"
fails=$(curl -sk "https://127.0.0.1:$UI_PORT/metrics" 2>/dev/null | awk '$1 == "mta_smtp_auth_failures_total" { print $2 }')

printf '%-12s %14s %14s\n' run "logins/s" "mail msg/s"
printf '%-12s %14s %14s\n' "mail" "-" "$MAIL_ALONE"
printf '%-12s %14s %14s\n' "tls (no auth)" "$TLS_RATE" "-"
printf '%-12s %14s %14s\n' "auth" "$AUTH_RATE" "-"
printf '%-12s %14s %14s\n' "auth+mail" "$BOTH_AUTH" "$MAIL_BOTH"
echo "(server CPU: mail $MAIL_CPU ms/msg, TLS session $TLS_CPU ms, TLS session + SHA-512 login $AUTH_CPU ms; auth failures: ${fails:-?})"
