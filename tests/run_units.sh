#!/bin/sh
# Runs every cmocka unit test binary in the given directories; prints a summary.
pass=0; fail=0
for dir in "$@"; do
  for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    if "$t"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAILED: $t"; fi
  done
done
echo "unit test programs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
