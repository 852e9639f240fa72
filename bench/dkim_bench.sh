#!/bin/bash
# bench/dkim_bench.sh - accept rate and server CPU per message with DKIM
# signing: mtad without signing, with RSA-2048 and with Ed25519 keys, against
# Postfix + OpenDKIM (milter) signing the same messages with the same RSA key,
# in one run on loopback.
#
#   bench/dkim_bench.sh                     # as root, after `make`
#   N=5000 C=50 SIZE=5120 bench/dkim_bench.sh
#
# The load is Postfix's smtp-source (-s C -m N -l SIZE, one message per
# connection, From: <bench@example.com>); every server relays to one
# smtp-sink. Postfix runs as a private instance (tests/e2e/private_postfix.py:
# own config and queue under $WORK, never /etc/postfix or port 25, stopped by
# its master's PID), configured like tls_bench.sh without TLS, with OpenDKIM as its smtpd milter on a loopback socket (relaxed/relaxed,
# From over-signed, like mtad). Each configuration is started fresh, runs the
# same load, and is stopped. Server CPU is utime+stime of the daemon and its
# children (Postfix: the master, its children and what it reaped, plus the
# opendkim process) from /proc, before and after the run.
# Output: one table on stdout (msg/s is accepted messages over the wall time
# smtp-source took).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-5000}
C=${C:-50}
SIZE=${SIZE:-5120}
WORK=${WORK:-/var/tmp/mtad-dkimbench}
MTAD=${MTAD:-$ROOT/build/mtad}
CONFIGS=${CONFIGS:-"mtad-off mtad-rsa mtad-ed25519 postfix-opendkim"}
HZ=$(getconf CLK_TCK)
PF=$ROOT/tests/e2e/private_postfix.py     # the private Postfix starter

[ "$(id -u)" = 0 ] || { echo "run as root (Postfix's master needs it)" >&2; exit 1; }
[ -x "$MTAD" ] || { echo "no $MTAD: run make" >&2; exit 1; }
for p in postfix opendkim smtp-source smtp-sink; do
	command -v "$p" >/dev/null || { echo "$p is not installed" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
log() { echo "dkim_bench: $*" >&2; }

SINK_PID="" MTAD_PID="" ODKIM_PID=""
stop_mtad() {
	if [ -n "$MTAD_PID" ]; then
		kill -TERM "$MTAD_PID" 2>/dev/null || true
		wait "$MTAD_PID" 2>/dev/null || true
		MTAD_PID=""
	fi
}
cleanup() {
	python3 "$PF" stop "$WORK/pf" || true
	stop_mtad
	[ -n "$ODKIM_PID" ] && kill -TERM "$ODKIM_PID" 2>/dev/null || true
	[ -n "$SINK_PID" ] && kill -TERM "$SINK_PID" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK/keys/dkim" "$WORK/odkim"

# --- keys: one RSA-2048 key for both, an Ed25519 key for mtad -------------------
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/keys/dkim/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$WORK/keys/dkim/ed.pem" 2>/dev/null
echo "example.com rsa2048 dkim/rsa.pem" > "$WORK/keys/dkim/table-rsa"
echo "example.com ed1 dkim/ed.pem" > "$WORK/keys/dkim/table-ed"
cp "$WORK/keys/dkim/rsa.pem" "$WORK/odkim/rsa.pem"

SINK_PORT=$(free_port) PF_PORT=$(free_port) MTAD_PORT=$(free_port) UI_PORT=$(free_port)
MILTER_PORT=$(free_port) PROBE_PORT=$(free_port)

smtp-sink -u nobody -c -m 2048 "127.0.0.1:$SINK_PORT" 1024 > "$WORK/sink.out" 2>&1 &
SINK_PID=$!

wait_port() {
	local i
	for i in $(seq 1 200); do
		(exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "port $1 did not open" >&2
	exit 1
}

# cpu_ticks PID... - utime+stime of the processes (all threads) and their
# children, plus what each of the given processes has reaped
cpu_ticks() {
	local total=0 p k v kids
	for p in "$@"; do
		v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12+$13+$14+$15}')
		total=$((total + ${v:-0}))
		kids=$(ps -o pid= --ppid "$p" 2>/dev/null || true)
		for k in $kids; do
			v=$(sed 's/.*) //' "/proc/$k/stat" 2>/dev/null | awk '{print $12+$13}')
			total=$((total + ${v:-0}))
		done
	done
	echo "$total"
}

declare -A RATE CPU
load() {   # load NAME PORT PID...
	local name=$1 port=$2 before after t0 t1 el
	shift 2
	sleep 1
	before=$(cpu_ticks "$@")
	t0=$(date +%s.%N)
	smtp-source -s "$C" -m "$N" -l "$SIZE" -f bench@example.com -t rcpt@dest.test \
		"127.0.0.1:$port" > "$WORK/$name.source" 2>&1
	t1=$(date +%s.%N)
	after=$(cpu_ticks "$@")
	el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	RATE[$name]=$(awk -v n="$N" -v e="$el" 'BEGIN { printf "%.0f", n / e }')
	CPU[$name]=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$N" \
		'BEGIN { printf "%.2f", 1000 * t / hz / n }')
	log "$name: $N messages in ${el}s = ${RATE[$name]} msg/s, server cpu ${CPU[$name]} ms/msg"
}

run_mtad() {   # run_mtad NAME TABLE
	local name=$1 table=$2 signed
	rm -rf "$WORK/mtad"
	mkdir -p "$WORK/mtad"
	cat > "$WORK/mtad/mtad.conf" <<CF
data_dir = $WORK/mtad/queue
smtp_listen = 127.0.0.1:$MTAD_PORT
smtps_listen =
smart_relay = [127.0.0.1]:$SINK_PORT
smtpd_trusted_networks = 127.0.0.0/8
ui_address = 127.0.0.1
ui_port = $UI_PORT
logs_enabled = no
hostname = bench.localdomain
mail_owner = nobody
key_dir = $WORK/keys
dkim_key_table = $table
CF
	"$MTAD" -c "$WORK/mtad/mtad.conf" > "$WORK/mtad/mtad.out" 2>&1 < /dev/null &
	MTAD_PID=$!
	wait_port "$MTAD_PORT"
	load "$name" "$MTAD_PORT" "$MTAD_PID"
	signed=$(curl -s "http://127.0.0.1:$UI_PORT/metrics" | awk '$1 == "mta_dkim_signed_total" { print $2 }')
	log "$name: mta_dkim_signed_total=$signed"
	stop_mtad
}

run_postfix() {
	local d=$WORK/pf
	chown -R opendkim: "$WORK/odkim"
	chmod 600 "$WORK/odkim/rsa.pem"
	cat > "$WORK/odkim/opendkim.conf" <<CF
Syslog no
Mode s
Socket inet:$MILTER_PORT@127.0.0.1
Canonicalization relaxed/relaxed
KeyTable $WORK/odkim/keytable
SigningTable refile:$WORK/odkim/signingtable
OversignHeaders From
RequireSafeKeys false
UserID opendkim
PidFile $WORK/odkim/opendkim.pid
CF
	echo "rsa2048._domainkey.example.com example.com:rsa2048:$WORK/odkim/rsa.pem" > "$WORK/odkim/keytable"
	echo "*@example.com rsa2048._domainkey.example.com" > "$WORK/odkim/signingtable"
	opendkim -f -x "$WORK/odkim/opendkim.conf" > "$WORK/odkim/opendkim.out" 2>&1 &
	ODKIM_PID=$!
	wait_port "$MILTER_PORT"
	local master i
	master=$(python3 "$PF" start "$d" "$PF_PORT" <<CF
myhostname = bench.localdomain
mydomain = localdomain
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$SINK_PORT
default_process_limit = 200
smtpd_milters = inet:127.0.0.1:$MILTER_PORT
milter_default_action = tempfail
transport_maps = inline:{probe.test=smtp:[127.0.0.1]:$PROBE_PORT}
CF
	)
	# one probe message to a dumping sink: OpenDKIM really signs
	mkdir -p "$WORK/probe" && chown nobody "$WORK/probe"
	smtp-sink -u nobody -D "$WORK/probe/dump" "127.0.0.1:$PROBE_PORT" 10 > /dev/null 2>&1 &
	local probe=$!
	wait_port "$PROBE_PORT"
	smtp-source -m 1 -l "$SIZE" -f bench@example.com -t x@probe.test "127.0.0.1:$PF_PORT"
	for i in $(seq 1 100); do
		grep -q '^DKIM-Signature: v=1; a=rsa-sha256' "$WORK/probe/dump" 2>/dev/null && break
		sleep 0.1
	done
	kill -TERM "$probe" 2>/dev/null || true
	grep -q '^DKIM-Signature: v=1; a=rsa-sha256' "$WORK/probe/dump" ||
		{ log "postfix-opendkim: the probe message was not signed"; exit 1; }
	log "postfix-opendkim: probe message signed by OpenDKIM"
	load postfix-opendkim "$PF_PORT" "$master" "$ODKIM_PID"
	python3 "$PF" stop "$d"
	kill -TERM "$ODKIM_PID" 2>/dev/null || true
	wait "$ODKIM_PID" 2>/dev/null || true
	ODKIM_PID=""
}

wait_port "$SINK_PORT"
log "N=$N C=$C size=$SIZE; postfix $(postconf -d -h mail_version 2>/dev/null), $(opendkim -V 2>&1 | head -1), $("$MTAD" -V)"
for c in $CONFIGS; do
	case "$c" in
	mtad-off) run_mtad mtad-off "" ;;
	mtad-rsa) run_mtad mtad-rsa dkim/table-rsa ;;
	mtad-ed25519) run_mtad mtad-ed25519 dkim/table-ed ;;
	postfix-opendkim) run_postfix ;;
	esac
done

printf '%-18s %10s %14s %18s\n' config "msg/s" "cpu ms/msg" "vs postfix+odkim"
for c in $CONFIGS; do
	printf '%-18s %10s %14s %18s\n' "$c" "${RATE[$c]}" "${CPU[$c]}" \
		"$(awk -v a="${RATE[$c]}" -v b="${RATE[postfix-opendkim]:-0}" 'BEGIN { printf "%.2fx", b ? a / b : 0 }')"
done
