#!/bin/bash
# bench/queue_million.sh - mtad over a big queue (SPEC §11.5): build an N-message
# queue (default 1,000,000) through the queue's API, start mtad on it, and report
#
#   fill          time to write the queue (bench/queue_bench.c, 50 commits in flight)
#   first 250     start of mtad -> a new message's 250 (listeners open, mail accepted)
#   recovered     start of mtad -> "queue recovered" in its log
#   rss           mtad's VmRSS and VmHWM once the queue is recovered
#   api page      GET /api/queue?limit=50 (time_total)
#   qshape        GET /api/qshape over the whole queue (after the index of parked
#                 messages is ready; says "partial" if it is not)
#   search        GET /api/queue?domain=d7.example&limit=50: a filtered listing, one
#                 pass over the index (its total: N / DOMAINS)
#   bulk          POST /api/queue/hold, then /release, {"domain": "d7.example"}: every
#                 match acted on (matched, changed)
#   smtp          new mail (one connection, one message at a time) while a qshape
#                 pass runs: the 250s' median and max delay
#   mtactl queue  mtactl queue | wc -l, against the running mtad
#
#   bench/queue_million.sh                 # N=1000000, 1 KB messages, 100 domains
#   N=200000 SIZE=1024 DOMAINS=100 bench/queue_million.sh
#   KEEP=/path/to/dir bench/queue_million.sh   # reuse (or keep) the filled data_dir
#
# The relay is a closed port on loopback (the upstream is down), so the queue stays.
# Everything runs on loopback with private ports; mtad is stopped by PID at the end.
# A benchmark, not a test: it asserts nothing; numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-1000000}
SIZE=${SIZE:-1024}
DOMAINS=${DOMAINS:-100}
PORT_BASE=${PORT_BASE:-${MTAD_TEST_PORT_BASE:-15700}}
SMTP_PORT=$((PORT_BASE + 1))
UI_PORT=$((PORT_BASE + 2))
DEAD_PORT=$((PORT_BASE + 3))
MAIL_OWNER=${MAIL_OWNER:-nobody}
WORK=${KEEP:-$(mktemp -d /tmp/queue_million.XXXXXX)}
PYTHON=${PYTHON:-/usr/bin/python3}

make -s -j2 all build/bench/queue_bench >/dev/null
mkdir -p "$WORK/logs"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

if [ ! -d "$WORK/data/queue" ] || [ "$(ls -f "$WORK/data/queue" | wc -l)" -lt "$N" ]; then
	t0=$(now)
	build/bench/queue_bench "$WORK/data" "$N" "$SIZE" "$DOMAINS"
	echo "fill: $N messages of $SIZE bytes in $(secs "$t0" "$(now)") s"
	# as if mtad (running as mail_owner) had written them: a clean stop's queue.owned
	# then spares the start a walk of queue/ for its owner
	if [ "$(id -u)" = 0 ]; then
		chown -R "$MAIL_OWNER:" "$WORK/data"
		touch "$WORK/data/queue.owned"
	fi
fi
du -sh "$WORK/data/queue" | awk '{ print "queue on disk: " $1 }'

cat > "$WORK/mtad.conf" <<EOF
data_dir = $WORK/data
smtp_listen = 127.0.0.1:$SMTP_PORT
ui_address = 127.0.0.1
ui_port = $UI_PORT
smtpd_trusted_networks = 127.0.0.0/8
logs_enabled = yes
log_dir = $WORK/logs
maillog_filename = maillog
hostname = mx.bench.example
dns_servers = 127.0.0.1:1
smart_relay = [127.0.0.1]:$DEAD_PORT
retry_min_backoff = 1h
retry_max_backoff = 4h
mail_owner = $MAIL_OWNER
EOF

sync -f "$WORK/data/queue"      # the fill's dirty pages are not the restart's business
t0=$(now)
build/mtad -c "$WORK/mtad.conf" 2> "$WORK/mtad.err" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT

# restart to the first 250 of a new message (polls with a deadline)
"$PYTHON" - "$SMTP_PORT" <<'EOF'
import smtplib, socket, sys, time
port = int(sys.argv[1])
deadline = time.monotonic() + 600
while True:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.sendmail("probe@bench.example", ["probe@d0.example"],
                       b"Subject: probe\r\n\r\nprobe\r\n")
        break
    except (OSError, smtplib.SMTPException):
        if time.monotonic() > deadline:
            sys.exit("no 250 within 600 s")
        time.sleep(0.01)
EOF
echo "restart to first 250: $(secs "$t0" "$(now)") s"

deadline=$((SECONDS + 1800))
until grep -q "queue recovered" "$WORK/mtad.err"; do
	[ $SECONDS -lt $deadline ] || { echo "recovery did not finish within 1800 s"; break; }
	kill -0 $PID 2>/dev/null || { echo "mtad exited:"; tail -5 "$WORK/mtad.err"; exit 1; }
	sleep 0.2
done
echo "restart to recovery complete: $(secs "$t0" "$(now)") s ($(grep -o 'queue recovered.*' "$WORK/mtad.err"))"
grep -E 'VmRSS|VmHWM' /proc/$PID/status | tr -s ' \t' ' ' | sed 's/^/mtad /'

curl -s -o /dev/null -w "api page (GET /api/queue?limit=50): %{time_total} s, HTTP %{http_code}\n" \
	"http://127.0.0.1:$UI_PORT/api/queue?limit=50"
curl -s -o /dev/null -w "api page 1000 (GET /api/queue?page=1000&per_page=50): %{time_total} s, HTTP %{http_code}\n" \
	"http://127.0.0.1:$UI_PORT/api/queue?page=1000&per_page=50"
# the views below pass over the index of parked messages: wait until it is ready
# (rebuilt from queue/ on its own thread when the queue was not written by mtad)
t1=$(now)
deadline=$((SECONDS + 1800))
until curl -s "http://127.0.0.1:$UI_PORT/api/queue?domain=d0.example&limit=1" |
	grep -q '"total"' && ! curl -s "http://127.0.0.1:$UI_PORT/api/queue?domain=d0.example&limit=1" |
	grep -q '"partial"'; do
	[ $SECONDS -lt $deadline ] || { echo "the index was not ready within 1800 s"; break; }
	sleep 0.5
done
echo "index of parked messages ready: $(secs "$t1" "$(now)") s after recovery"
view() {    # view NAME METHOD PATH [BODY]: time, HTTP code and the answer's counters
	local out
	out=$(curl -s -X "$2" -H 'X-Requested-With: bench' -H 'Content-Type: application/json' \
		${4:+-d "$4"} -w '\n%{time_total} %{http_code}' "http://127.0.0.1:$UI_PORT$3")
	printf '%s: %s s, HTTP %s, %s\n' "$1" "$(tail -1 <<<"$out" | cut -d' ' -f1)" \
		"$(tail -1 <<<"$out" | cut -d' ' -f2)" \
		"$(head -n -1 <<<"$out" | "$PYTHON" -c 'import json, sys
j = json.load(sys.stdin)
if isinstance(j.get("total"), dict):
    j["total"] = j["total"]["count"]      # qshape: pending recipients
keys = ("total", "matched", "changed", "failed", "ndomains", "partial")
print(" ".join("%s=%s" % (k, j[k]) for k in keys if k in j))')"
}
view "qshape (GET /api/qshape)" GET /api/qshape
view "search (GET /api/queue?domain=d7.example&limit=50)" GET "/api/queue?domain=d7.example&limit=50"
view "search, page 20 (GET /api/queue?sender=bench&domain=d7.example&page=20)" GET \
	"/api/queue?sender=bench@example.org&domain=d7.example&page=20&per_page=50"
view "bulk hold (POST /api/queue/hold {domain: d7.example})" POST /api/queue/hold \
	'{"domain": "d7.example"}'
view "held (GET /api/queue?state=held&limit=1)" GET "/api/queue?state=held&limit=1"
view "bulk release (POST /api/queue/release {domain: d7.example})" POST /api/queue/release \
	'{"domain": "d7.example"}'
# new mail while a pass runs (slices of at most 5 ms): 250s during a qshape of the
# queue, against the same for 3 s with no pass (probe WHAT PID: while PID runs, or 3 s)
probe() {
	"$PYTHON" - "$SMTP_PORT" "$1" "$2" <<'EOF'
import smtplib, sys, time
port, what, cpid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

def running():
    try:
        with open("/proc/%d/stat" % cpid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

lat = []
t0 = time.monotonic()
with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
    while (running() if cpid else time.monotonic() - t0 < 3) and time.monotonic() - t0 < 300:
        t = time.monotonic()
        s.sendmail("probe@bench.example", ["probe@d0.example"], b"Subject: probe\r\n\r\nprobe\r\n")
        lat.append(time.monotonic() - t)
lat.sort()
if lat:
    print("smtp %s: %d message(s), 250 after %.1f ms median, %.1f ms max"
          % (what, len(lat), lat[len(lat) // 2] * 1000, lat[-1] * 1000))
EOF
}
probe "with no pass" 0
curl -s -o /dev/null "http://127.0.0.1:$UI_PORT/api/qshape" &
CPID=$!
probe "during a qshape pass" $CPID
wait $CPID || true
t1=$(now)
lines=$(build/mtactl -c "$WORK/mtad.conf" queue | wc -l)
echo "mtactl queue: $lines lines in $(secs "$t1" "$(now)") s"
grep -E 'VmRSS|VmHWM' /proc/$PID/status | tr -s ' \t' ' ' | sed 's/^/mtad after the views: /'

kill $PID
wait $PID 2>/dev/null || true
trap - EXIT
if [ -z "${KEEP:-}" ]; then
	rm -rf "$WORK"
else
	echo "data_dir kept in $WORK"
fi
