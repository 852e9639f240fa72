#!/bin/sh
# coverage.sh - line coverage of src/ by the unit and black-box tests
#
# usage: tools/coverage.sh [BUILD_DIR]      (default build/cov; `make coverage`)
#
# BUILD_DIR holds a --coverage build (programs and unit tests). The unit
# tests run, then the black-box tests against BUILD_DIR/mtad; gcovr (the
# Debian package) reads the counts and tools/coverage_folders.py prints the
# line coverage per folder of src/ (generated assets excluded). Reports:
# BUILD_DIR/coverage.txt (per file) and BUILD_DIR/coverage.json.
#
# Counts are written when a process exits normally (exit(), not _exit() or
# SIGKILL). mtad runs as mail_owner (nobody) after start-up, so it cannot
# write beside the root-owned objects: every process writes its counts
# under GCOV_PREFIX, a directory tree in which every count file (.gcda) is
# made ahead, empty and writable by all (libgcov fills an empty one), so
# that a file first written by root stays writable by mtad; the
# compile-time notes (.gcno) are copied there before gcovr reads it.
#
# Environment: COV_E2E (test paths, default tests/e2e), COV_JOBS (xdist
# workers, default 2), COV_NICE (default 10). Failing tests are reported
# and do not stop the report (their counts still count).
set -u
B=${1:-build/cov}
root=$(pwd)
jobs=${COV_JOBS:-2}
e2e=${COV_E2E:-tests/e2e}
nicen=${COV_NICE:-10}
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$B/mtad" ] || { echo "$0: no $B/mtad: run make coverage" >&2; exit 2; }
command -v gcovr >/dev/null || { echo "$0: gcovr missing (apt-get install gcovr)" >&2; exit 2; }

prefix=$(mktemp -d /tmp/mtad-cov.XXXXXX) || exit 2
trap 'rm -rf "$prefix"' EXIT
find "$B" -name '*.gcda' -delete
# The object tree, mirrored under the prefix, with an empty count file per
# object, all writable by every user.
find "$B/obj" -type d | while read -r d; do mkdir -p "$prefix$root/$d"; done
find "$root/$B/obj" -name '*.gcno' | while read -r f; do : > "$prefix${f%.gcno}.gcda"; done
chmod -R a+rwX "$prefix"
export GCOV_PREFIX="$prefix" GCOV_PREFIX_STRIP=0

status=0
echo "== unit tests ($B/tests)"
nice -n "$nicen" sh tests/run_units.sh "$B/tests" || status=1
echo "== black-box tests against $B/mtad: $e2e"
# shellcheck disable=SC2086
MTAD_BIN="$root/$B/mtad" nice -n "$nicen" $PYTHON -m pytest -q -p no:cacheprovider -n "$jobs" $e2e \
    || status=1

find "$prefix" -name '*.gcda' -size 0 -delete      # objects no test ran
find "$root/$B/obj" -name '*.gcno' | while read -r f; do cp "$f" "$prefix$f"; done
gcovr -r "$root" --filter "$root/src/" --exclude "$root/src/http/http_assets.c" \
    --exclude "$root/src/.*/.*_assets\.c" \
    --json-summary-pretty -o "$B/coverage.json" --txt "$B/coverage.txt" \
    "$prefix$root/$B/obj" >/dev/null || { echo "$0: gcovr failed" >&2; exit 2; }
$PYTHON tools/coverage_folders.py "$B/coverage.json"
[ $status -eq 0 ] || echo "(some tests failed: the figures above include what did run)"
exit $status
