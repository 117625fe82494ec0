#!/usr/bin/env bash
# Usage: written_once.sh CAIRN ITEM_DIR — checks, through `cairn kv ls` of each per-process database of a
# 4-process save, that every chunk is in exactly one of them: the replicated array `params.r` once in
# the job, `params.b` (replicated over `data`) once per `model` shard, `params.w` once per device.
set -euo pipefail
cairn=$1 item=$2
count() { # count KEY_REGEX [PROCESSES]: matching keys in those per-process databases (default: all)
  local n=0 p
  for p in ${2:-0 1 2 3}; do
    n=$(( n + $("$cairn" kv ls "$item/ocdbt.process_$p" | cut -f1 | grep -c "^$1" || true) ))
  done
  echo "$n"
}
status=0
check() { # check WHAT GOT WANT
  if [[ "$2" == "$3" ]]; then echo "$1: $2 (as expected)"; else echo "$1: $2, expected $3"; status=1; fi
}
check "params.r chunks" "$(count 'params.r/c/')" 1
check "params.b chunks" "$(count 'params.b/c/')" 2
check "params.w chunks" "$(count 'params.w/c/')" 4
check "zarr metadata keys of processes 1-3" "$(count '.*/zarr.json$' '1 2 3')" 0   # the primary writes them
check "params.w/zarr.json" "$(count 'params.w/zarr.json')" 1
exit $status
