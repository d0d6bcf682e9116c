#!/bin/sh
# gen_man.sh KVQ VERSION — write the kvq(1) man page on stdout, built from the command's own
# `kvq --help` and `kvq <command> --help` texts so it never drifts from the program.
set -eu
kvq=$1; version=$2
esc() { sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\&'/"; }
cat <<HEAD
.TH KVQ 1 "" "kvq $version" "User Commands"
.SH NAME
kvq \- KV-cache quantization toolchain (KVQuant): capture, fit, evaluate, inspect
.SH SYNOPSIS
.B kvq
.I command
[\fIoptions\fR]
.SH DESCRIPTION
HEAD
echo ".nf"
"$kvq" --help | esc
echo ".fi"
echo ".SH COMMANDS"
for c in $("$kvq" --help | awk '/^commands:/ {on=1; next} on && /^  [a-z]/ {print $1}'); do
    echo ".SS kvq $c"
    echo ".nf"
    "$kvq" "$c" --help 2>&1 | esc
    echo ".fi"
done
cat <<'TAIL'
.SH EXIT STATUS
0 success; 1 the work failed (computation, CUDA, out of memory); 2 bad command line;
3 an input file or its data is invalid (corrupt, mismatched, NaN/Inf); 4 reading or writing a
file failed (missing, unwritable, disk full).
.SH ENVIRONMENT
KVQ_PROGRESS=0|1 turns the progress bar off or on (default: on when stderr is a terminal).
OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set the engine's threads.
.SH SEE ALSO
docs/cli.md, docs/format.md, docs/capture-format.md and docs/ARCHITECTURE.md in the source tree.
TAIL
