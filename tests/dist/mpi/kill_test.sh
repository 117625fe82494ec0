#!/usr/bin/env bash
# Usage: kill_test.sh PROGRAM ROOT STEP MPIRUN... — rank 3 of 4 dies during a save of STEP: ranks 0-2
# must report a timeout naming it and the root must hold no step STEP; then 4 fresh processes save STEP.
set -uo pipefail
prog=$1 root=$2 step=$3
shift 3
# --enable-recovery: Open MPI keeps the job running when a rank dies, as a real engine's survivors would.
out=$("$@" --enable-recovery -n 4 "$prog" kill "$root" "$step" 2>&1)
echo "$out"
status=0
for r in 0 1 2; do
  grep -q "^rank $r: reported as expected: .*rank 3 of 4 did not arrive at save.written of step $step" <<<"$out" ||
    { echo "kill_test: rank $r did not report rank 3's death"; status=1; }
done
[[ -e "$root/$step" ]] && { echo "kill_test: step $step was committed"; status=1; }
out=$("$@" -n 4 "$prog" save "$root" "$step" 2>&1)
echo "$out"
grep -q "saved step $step with 4 processes: bit-exact" <<<"$out" || { echo "kill_test: the next save failed"; status=1; }
ls "$root" | grep -q "orbax-checkpoint-tmp" && { echo "kill_test: a temporary directory is left"; status=1; }
exit $status
