#!/bin/bash
# size_sweep.sh - the shared benchmark at several message sizes, one table.
#
# Runs ../shared/bench/bench.sh (Postfix side by side with mtad, workloads
# conn and persist) once per body size and prints, per size, mtad's rate
# ratios against Postfix and both peers' CPU per message and per MB of body
# (server tree). Run from the project root as root, on a quiet machine:
#
#   bench/size_sweep.sh                     # 1 KB, 5 KB, 100 KB, 1 MB
#   SIZES="102400 1048576" REPS=1 bench/size_sweep.sh
#   MTAD=/path/to/mtad bench/size_sweep.sh
#
# N per size keeps each load run within the bench's cap for Postfix on a
# 2-core box (about 22 s); OUT keeps the per-size JSON and logs.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"1024 5120 102400 1048576"}
REPS=${REPS:-3}
OUT=${OUT:-build/bench/size_sweep}
BENCH=${BENCH:-../shared/bench/bench.sh}
mkdir -p "$OUT"

n_for() {   # messages per load run for a body size
	case $1 in
	1024|5120) echo 5000 ;;
	102400) echo 2000 ;;
	*) echo 300 ;;
	esac
}

for s in $SIZES; do
	n=${N:-$(n_for "$s")}
	echo "== size $s B, N=$n, reps $REPS" >&2
	"$BENCH" --peers postfix,mtad --workloads conn,persist --size "$s" -n "$n" \
	    --reps "$REPS" --json "$OUT/size-$s.json" > "$OUT/size-$s.txt" 2> "$OUT/size-$s.log" ||
	    echo "bench at size $s failed: see $OUT/size-$s.log" >&2
done

python3 - "$OUT" $SIZES <<'PY'
import json, os, sys
out, sizes = sys.argv[1], [int(x) for x in sys.argv[2:]]
def g(d, peer, key):
    v = d["summary"].get(peer, {}).get(key)
    return v if isinstance(v, (int, float)) else None
def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "-"
def f(v, nd=2):
    return ("%.*f" % (nd, v)) if v is not None else "-"
hdr = ("size", "mode", "accept ratio", "relay ratio", "CPU ms/msg pf", "CPU ms/msg mtad",
       "CPU ratio", "CPU ms/MB pf", "CPU ms/MB mtad")
rows = []
for s in sizes:
    p = os.path.join(out, "size-%d.json" % s)
    if not os.path.exists(p):
        rows.append((str(s), "-", "no result", "", "", "", "", "", ""))
        continue
    d = json.load(open(p))
    mb = s / 1048576.0
    for mode in ("conn", "persist"):
        pa, ma = g(d, "postfix", mode + ".accept_rate"), g(d, "mtad", mode + ".accept_rate")
        pr, mr = g(d, "postfix", mode + ".relay_rate"), g(d, "mtad", mode + ".relay_rate")
        pc, mc = g(d, "postfix", mode + ".cpu_per_1k"), g(d, "mtad", mode + ".cpu_per_1k")
        rows.append(("%d" % s, mode, ratio(ma, pa), ratio(mr, pr), f(pc), f(mc), ratio(mc, pc),
                     f(pc / mb if pc is not None else None, 1),
                     f(mc / mb if mc is not None else None, 1)))
w = [max(len(str(r[i])) for r in rows + [hdr]) + 2 for i in range(len(hdr))]
print("size sweep: mtad / Postfix, medians; CPU = server tree (s/1000 msgs = ms/msg)")
print("".join(str(h).rjust(w[i]) for i, h in enumerate(hdr)))
for r in rows:
    print("".join(str(c).rjust(w[i]) for i, c in enumerate(r)))
PY
