#!/usr/bin/env bash
# Creates, or reuses when already complete, the Python interop environment used by cairn's test
# suites (Orbax, TensorStore, JAX on CPU, Keras with the JAX backend). Never a dependency of the
# library itself.
#
#   py=$(bash scripts/interop-env.sh | tail -1)
#
# The last line of stdout is the absolute path of the environment's python; progress goes to
# stderr. Exits non-zero with a message when the environment cannot be created (no network, no
# suitable Python 3.11, ...).
#
# Environment:
#   CAIRN_INTEROP_VENV    where the venv lives; default
#                         $HOME/.cache/cairn/interop-venv-<hash of interop-requirements.txt>.
#                         Must be outside the repository (and so outside the build trees).
#   CAIRN_INTEROP_PYTHON  the interpreter that creates the venv; default: the first Python 3.11
#                         with the venv module among /usr/bin/python3, python3.11, pyenv's 3.11.
#
# The versions are pinned in scripts/interop-requirements.txt and come from PyPI through pip. A
# marker file written after a successful install records the requirements hash; when it matches
# and the packages import, the script returns at once. The venv's site-packages gets a .pth file
# that defaults KERAS_BACKEND=jax and JAX_PLATFORMS=cpu (a caller's own values still win).
set -euo pipefail

log() { echo "cairn-interop: $*" >&2; }
die() { log "error: $*"; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
req="$root/scripts/interop-requirements.txt"
[[ -f "$req" ]] || die "missing $req"

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -c1-64
  elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -c1-64
  else die "neither sha256sum nor shasum is available"
  fi
}
hash=$(sha256 "$req")
short=${hash:0:12}

[[ -n "${CAIRN_INTEROP_VENV:-}" || -n "${HOME:-}" ]] || die "HOME is unset; set CAIRN_INTEROP_VENV"
venv=${CAIRN_INTEROP_VENV:-$HOME/.cache/cairn/interop-venv-$short}
[[ "$venv" == /* ]] || venv="$PWD/$venv"
venv=${venv%/}
case "$venv/" in
  "$root"/*) die "the venv ($venv) must live outside the repository ($root)" ;;
esac
marker="$venv/.cairn-interop-complete"
py="$venv/bin/python"

# Environment defaults baked into the venv, and the import check that proves it is usable.
pth_name=cairn_interop_env.pth
pth_line='import os; os.environ.setdefault("KERAS_BACKEND", "jax"); os.environ.setdefault("JAX_PLATFORMS", "cpu")'
check_imports() {
  KERAS_BACKEND=jax JAX_PLATFORMS=cpu "$py" -c \
    'import orbax.checkpoint, tensorstore, jax, keras, numpy' >/dev/null 2>&1
}
is_complete() {
  [[ -x "$py" && -f "$marker" ]] && [[ "$(cat "$marker" 2>/dev/null)" == "$hash" ]] && check_imports
}

# Fast path: nothing to do.
if is_complete; then
  log "reusing $venv"
  echo "$py"
  exit 0
fi

# Serialise concurrent callers (parallel test suites) on a lock beside the venv.
mkdir -p "$(dirname "$venv")" || die "cannot create $(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock"
  flock -n 9 || { log "waiting for another caller to finish building $venv"; flock 9; }
  if is_complete; then  # built by another caller while we waited
    log "reusing $venv"
    echo "$py"
    exit 0
  fi
fi

# Pick the interpreter: Python 3.11 with a working venv module (ensurepip included: Debian ships it
# separately, in python3-venv).
py_minor() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
has_venv() { "$1" -c 'import venv, ensurepip' >/dev/null 2>&1; }
pick_python() {
  local c candidates=()
  if [[ -n "${CAIRN_INTEROP_PYTHON:-}" ]]; then
    c=$(command -v "$CAIRN_INTEROP_PYTHON" 2>/dev/null) || die "CAIRN_INTEROP_PYTHON=$CAIRN_INTEROP_PYTHON not found"
    has_venv "$c" || die "$c lacks the venv/ensurepip modules"
    [[ "$(py_minor "$c")" == 3.11 ]] || log "warning: $c is Python $(py_minor "$c"); the pins target 3.11"
    echo "$c"; return
  fi
  if [[ -x /usr/bin/python3 && "$(py_minor /usr/bin/python3)" == 3.11 ]]; then
    if has_venv /usr/bin/python3; then echo /usr/bin/python3; return; fi
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      log "installing python3-venv with apt-get (the venv module of /usr/bin/python3 is missing)"
      if DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2 ||
         { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2; }; then
        if has_venv /usr/bin/python3; then echo /usr/bin/python3; return; fi
      fi
      log "apt-get could not provide python3-venv; trying other interpreters"
    fi
  fi
  command -v python3.11 >/dev/null 2>&1 && candidates+=("$(command -v python3.11)")
  local pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
  for c in "$pyenv_root"/versions/3.11*/bin/python3; do [[ -x "$c" ]] && candidates+=("$c"); done
  command -v python3 >/dev/null 2>&1 && candidates+=("$(command -v python3)")
  for c in "${candidates[@]}"; do
    if [[ "$(py_minor "$c")" == 3.11 ]] && has_venv "$c"; then echo "$c"; return; fi
  done
  die "no Python 3.11 with the venv module found (install python3-venv, or set CAIRN_INTEROP_PYTHON)"
}
base=$(pick_python)

# Start from scratch: a venv without a matching marker is incomplete or stale. Only ever remove a
# directory that is recognisably a virtual environment.
if [[ -e "$venv" ]]; then
  [[ -f "$venv/pyvenv.cfg" ]] || die "$venv exists and is not a virtual environment; not touching it"
  log "removing the incomplete or stale environment $venv"
  rm -rf "$venv"
fi

start=$(date +%s)
log "creating $venv with $base (Python $(py_minor "$base"))"
cleanup_failed() { rm -rf "$venv"; }
"$base" -m venv "$venv" >&2 || { cleanup_failed; die "python -m venv failed"; }

log "installing the pinned packages from PyPI (several hundred MB; may take a few minutes)"
if ! "$py" -m pip install --disable-pip-version-check --no-input --only-binary=:all: \
     --retries 2 -r "$req" >&2; then
  cleanup_failed
  die "pip could not install $req (is PyPI reachable? proxy settings: HTTPS_PROXY, PIP_INDEX_URL)"
fi
"$py" -m pip check >&2 || { cleanup_failed; die "the installed packages are inconsistent (pip check)"; }

site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || { cleanup_failed; die "no site-packages"; }
printf '%s\n' "$pth_line" >"$site/$pth_name"

check_imports || { cleanup_failed; die "the environment was installed but its packages do not import"; }
printf '%s\n' "$hash" >"$marker"
log "ready in $(( $(date +%s) - start )) s: $venv"
echo "$py"
