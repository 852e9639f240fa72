#!/bin/sh
# fuzz_all.sh - run libFuzzer harnesses and print one line per harness
#
# usage: tools/fuzz_all.sh [-t SECONDS] [-j JOBS] [-n NICE] build/fuzz/fuzz_NAME...
#
# Each harness runs for SECONDS of wall time (-max_total_time) with
# -rss_limit_mb=512 -timeout=5, under `nice -n NICE` (default 19), JOBS at a
# time (default 1). Its writable corpus is build/fuzz/corpus-NAME, seeded
# from fuzz/corpus/NAME; a crash leaves its input as
# build/fuzz/artifacts/NAME/crash-* (or leak-*, timeout-*, oom-*) and its log
# as build/fuzz/logs/NAME.log. The table printed at the end gives, per
# harness: executions, libFuzzer's final cov: and ft:, corpus size and the
# result (ok, or CRASH with the artifact). Exit status 1 if any harness
# crashed or did not run.
set -u
secs=60; jobs=1; niceness=19
while getopts t:j:n: o; do
  case $o in
    t) secs=$OPTARG ;;
    j) jobs=$OPTARG ;;
    n) niceness=$OPTARG ;;
    *) echo "usage: $0 [-t SECONDS] [-j JOBS] [-n NICE] HARNESS..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "$0: no harness given" >&2; exit 2; }
mkdir -p build/fuzz/logs

# run_one BIN - one harness to completion; writes its log
run_one() {
  bin=$1; name=$(basename "$bin"); short=${name#fuzz_}
  corpus=build/fuzz/corpus-$short; art=build/fuzz/artifacts/$short/
  mkdir -p "$corpus" "$art"
  seeds=""; [ -d "fuzz/corpus/$short" ] && seeds="fuzz/corpus/$short"
  # -print_final_stats gives stat::number_of_executed_units at the end.
  nice -n "$niceness" "$bin" -max_total_time="$secs" -rss_limit_mb=512 -timeout=5 \
      -print_final_stats=1 -artifact_prefix="$art" "$corpus" $seeds \
      >"build/fuzz/logs/$short.log" 2>&1
  echo $? >"build/fuzz/logs/$short.rc"
}

# Start at most $jobs at once; wait for the oldest batch member to finish.
pids=""; n=0
for bin in "$@"; do
  run_one "$bin" &
  pids="$pids $!"; n=$((n + 1))
  if [ "$n" -ge "$jobs" ]; then
    wait; pids=""; n=0
  fi
done
wait

status=0
printf '%-20s %12s %7s %8s %7s  %s\n' harness executions cov ft corpus result
for bin in "$@"; do
  short=$(basename "$bin"); short=${short#fuzz_}
  [ -f "build/fuzz/logs/$short.log" ] || continue
  log=build/fuzz/logs/$short.log
  rc=$(cat "build/fuzz/logs/$short.rc" 2>/dev/null || echo 255)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
  cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
  art=$(ls -t "build/fuzz/artifacts/$short/" 2>/dev/null | head -n 1)
  if [ "$rc" = 0 ]; then
    result=ok
  elif grep -q '^SUMMARY: libFuzzer: timeout' "$log" && [ -n "$art" ]; then
    # libFuzzer's timeout is wall time: on a busy machine a niced harness can
    # be starved past it. Replay the input once: a real hang hangs again.
    status=1
    if timeout 60 "$bin" -timeout=5 -rss_limit_mb=512 "build/fuzz/artifacts/$short/$art" \
        >/dev/null 2>&1; then
      result="TIMEOUT (replay finishes in time: starved?) $art"
    else
      result="TIMEOUT (replay hangs too) $art"
    fi
  else
    status=1
    result="CRASH rc=$rc $art"
  fi
  printf '%-20s %12s %7s %8s %7s  %s\n' "$short" "${execs:--}" "${cov:--}" "${ft:--}" \
      "${corp:--}" "$result"
done
exit $status
