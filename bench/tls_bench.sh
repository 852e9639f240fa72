#!/bin/bash
# bench/tls_bench.sh - STARTTLS accept rate and server CPU per TLS session:
# mtad and Postfix side by side in one run, on loopback.
#
#   make bench-tls                      # builds build/bench/tls_load, runs this
#   bench/tls_bench.sh                  # as root, after `make` and `make bench-tls-build`
#   N=5000 C=50 T=30 KEY=rsa bench/tls_bench.sh
#
# Both servers get the same key and certificate (KEY=ec: P-256, the default;
# KEY=rsa: RSA 2048), TLS 1.2+ only, server cipher preference, session
# resumption on (Postfix: tlsmgr with a session cache; mtad: its defaults),
# and relay everything to one smtp-sink. Postfix runs as a private instance
# (tests/e2e/private_postfix.py: own config and queue directory under $WORK,
# never /etc/postfix or port 25, stopped by its master's PID), configured like shared/bench/peers/postfix.sh plus TLS. The load client
# is bench/tls_load.c (smtp-source has no TLS): C sessions at once, each one
# connection with EHLO, STARTTLS, EHLO, MAIL, RCPT, DATA (5 KB), QUIT.
#
# Workloads, each bounded by N sessions and T seconds:
#   mail       one message per connection, a full handshake each
#   mail+res   the same, resuming the previous TLS session (tickets)
#   hs         handshake only (EHLO, STARTTLS, EHLO, QUIT): CPU per handshake
#   hs+res     the same with resumption
# Server CPU is read from /proc/PID/stat (utime+stime of the daemon and every
# child, plus what the Postfix master reaped) before and after each run.
# Output: one table on stdout; the ratio column is mtad / Postfix.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-5000}
C=${C:-50}
T=${T:-30}
KEY=${KEY:-ec}
SIZE=${SIZE:-5120}
WORK=${WORK:-/var/tmp/mtad-tlsbench}
MTAD=${MTAD:-$ROOT/build/mtad}
LOAD=${LOAD:-$ROOT/build/bench/tls_load}
WORKLOADS=${WORKLOADS:-"mail mail+res hs hs+res"}
HZ=$(getconf CLK_TCK)
PF=$ROOT/tests/e2e/private_postfix.py     # the private Postfix starter

[ "$(id -u)" = 0 ] || { echo "run as root (Postfix's master needs it)" >&2; exit 1; }
[ -x "$MTAD" ] || { echo "no $MTAD: run make" >&2; exit 1; }
[ -x "$LOAD" ] || { echo "no $LOAD: run make bench-tls-build" >&2; exit 1; }
command -v postfix >/dev/null || { echo "postfix is not installed" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
log() { echo "tls_bench: $*" >&2; }

SINK_PID="" MTAD_PID=""
cleanup() {
	python3 "$PF" stop "$WORK/pf" || true
	[ -n "$MTAD_PID" ] && kill -TERM "$MTAD_PID" 2>/dev/null || true
	[ -n "$SINK_PID" ] && kill -TERM "$SINK_PID" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK/keys" "$WORK/mtad/queue"

# --- certificates (openssl) ----------------------------------------------------
. "$ROOT/tests/tls/make_certs.sh"
make_certs "$WORK/keys" "$KEY" bench.localdomain 2

SINK_PORT=$(free_port) PF_PORT=$(free_port) MTAD_PORT=$(free_port) MTADS_PORT=$(free_port)
UI_PORT=$(free_port)

# --- the sink both relay to -------------------------------------------------------
smtp-sink -u nobody -c -m 2048 "127.0.0.1:$SINK_PORT" 1024 > "$WORK/sink.out" 2>&1 &
SINK_PID=$!

# --- Postfix, private instance with TLS ---------------------------------------------
PF_MASTER=$(python3 "$PF" start "$WORK/pf" "$PF_PORT" <<CF
myhostname = bench.localdomain
mydomain = localdomain
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINK_PORT
default_process_limit = 200
# TLS: the best-configured Postfix of the issue
smtpd_tls_cert_file = $WORK/keys/server.pem
smtpd_tls_key_file = $WORK/keys/server.key
smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_ciphers = high
smtpd_tls_mandatory_ciphers = high
tls_preempt_cipherlist = yes
smtpd_tls_session_cache_database = btree:\${data_directory}/smtpd_scache
smtpd_tls_session_cache_timeout = 3600s
smtpd_tls_loglevel = 0
CF
)

# --- mtad with TLS -----------------------------------------------------------------------
cat > "$WORK/mtad/mtad.conf" <<CF
data_dir = $WORK/mtad/queue
smtp_listen = 127.0.0.1:$MTAD_PORT
smtps_listen = 127.0.0.1:$MTADS_PORT
smart_relay = [127.0.0.1]:$SINK_PORT
smtpd_trusted_networks = 127.0.0.0/8
ui_address = 127.0.0.1
ui_port = $UI_PORT
logs_enabled = no
hostname = bench.localdomain
ssl_disabled = no
key_dir = $WORK/keys
ssl_key_file = server.key
ssl_cert_file = server.pem
CF
"$MTAD" -c "$WORK/mtad/mtad.conf" > "$WORK/mtad/mtad.out" 2>&1 < /dev/null &
MTAD_PID=$!

wait_port() {
	local i
	for i in $(seq 1 200); do
		(exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "port $1 did not open" >&2
	exit 1
}
wait_port "$MTAD_PORT"

# cpu_ticks PID... - utime+stime of the processes and their children, plus what
# each of the given processes has reaped (cutime+cstime)
cpu_ticks() {
	local total=0 p k v kids
	for p in "$@"; do
		v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13+$14+$15}')
		total=$((total + ${v:-0}))
		kids=$(ps -o pid= --ppid "$p" 2>/dev/null || true)
		for k in $kids; do     # a child may exit meanwhile: then it counts as 0
			v=$(sed 's/.*) //' "/proc/$k/stat" 2>/dev/null | awk '{print $12+$13}')
			total=$((total + ${v:-0}))
		done
	done
	echo "$total"
}

declare -A RATE CPU
run() {   # run NAME PID PORT WORKLOAD
	local name=$1 pid=$2 port=$3 w=$4 flags="" before after out ok rate
	case "$w" in
	mail) flags="" ;; mail+res) flags="-r" ;; hs) flags="-x" ;; hs+res) flags="-x -r" ;;
	esac
	sleep 1
	before=$(cpu_ticks "$pid")
	out=$("$LOAD" -c "$C" -n "$N" -t "$T" -S "$SIZE" $flags "$port")
	after=$(cpu_ticks "$pid")
	ok=$(sed 's/.* ok=\([0-9]*\).*/\1/' <<< "$out")
	rate=$(sed 's/.* rate=\([0-9.]*\).*/\1/' <<< "$out")
	RATE[$name,$w]=$rate
	CPU[$name,$w]=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$ok" \
		'BEGIN { printf "%.2f", n ? 1000 * t / hz / n : 0 }')
	log "$name $w: $out server_cpu_ms_per_session=${CPU[$name,$w]}"
}

log "N=$N C=$C T=${T}s size=$SIZE key=$KEY; postfix $(postconf -d -h mail_version 2>/dev/null), $("$MTAD" -V)"
for w in $WORKLOADS; do
	run postfix "$PF_MASTER" "$PF_PORT" "$w"
	run mtad "$MTAD_PID" "$MTAD_PORT" "$w"
done

printf '%-10s %14s %14s %7s %16s %16s\n' workload "postfix msg/s" "mtad msg/s" ratio \
	"postfix cpu ms" "mtad cpu ms"
for w in $WORKLOADS; do
	printf '%-10s %14s %14s %7s %16s %16s\n' "$w" "${RATE[postfix,$w]}" "${RATE[mtad,$w]}" \
		"$(awk -v a="${RATE[mtad,$w]}" -v b="${RATE[postfix,$w]}" 'BEGIN { printf "%.2fx", b ? a / b : 0 }')" \
		"${CPU[postfix,$w]}" "${CPU[mtad,$w]}"
done
echo "(cpu ms = server CPU milliseconds per TLS session; hs rows: per handshake)"
