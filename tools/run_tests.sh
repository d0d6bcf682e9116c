#!/bin/sh
# run_tests.sh — run each Check test binary given as an argument, then print one summary line
# "tests: N passed, M failed" and exit non-zero when any suite failed.
# Check's per-test timeout is raised (suites load real models; sanitizers slow them down).
set -u
export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-600}"
pass=0; fail=0; failed=""
for t in "$@"; do
    echo "== $t"
    if "$t"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $t"; fi
done
[ -n "$failed" ] && echo "failed suites:$failed"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
