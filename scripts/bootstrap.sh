#!/usr/bin/env bash
# Shared set-up for scripts/run-app and scripts/run-tests: system packages, a virtual
# environment, the Python packages. Idempotent: a second run with nothing changed only checks.
# Sourced, not executed; leaves $PY pointing at the venv's python.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MYCANVAS_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/mycanvas-studio/venv}"
PY="$VENV/bin/python"
WITH_TESTS="${MYCANVAS_WITH_TESTS:-0}"

# Qt needs these at run time; xvfb/xauth and the xcb set serve screenshots on a virtual screen;
# python3-venv and a compiler for packages that build (llama-cpp-python builds from source).
APT_PACKAGES=(
  python3 python3-venv python3-dev build-essential cmake git
  libegl1 libgl1 libglib2.0-0 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 libdbus-1-3
  fonts-dejavu-core xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-cursor0 libxcb-xinerama0 libxcb-randr0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1
)

log() { printf '[mycanvas setup] %s\n' "$*" >&2; }

ensure_system_packages() {
  command -v dpkg-query >/dev/null 2>&1 || { log "not a Debian-like system: skipping apt checks"; return 0; }
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # A python3 outside apt (pyenv, a custom build) serves as well as Debian's.
  if command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' 2>/dev/null; then
    local keep=()
    for p in "${missing[@]}"; do
      case "$p" in python3|python3-venv|python3-dev) ;; *) keep+=("$p");; esac
    done
    missing=("${keep[@]}")
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ]; then
    log "installing system packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "missing system packages; install them with:"
    echo "sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

pick_python() {
  local c
  for c in python3.11 python3.12 python3.10 python3; do
    if command -v "$c" >/dev/null 2>&1 &&
       "$c" -c 'import sys; sys.exit(not ((3,10) <= sys.version_info[:2] <= (3,12)))' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  log "needs Python 3.10-3.12"; exit 1
}

ensure_venv() {
  if [ ! -x "$PY" ] || ! "$PY" -c 'import sys' 2>/dev/null; then
    log "creating the virtual environment at $VENV"
    rm -rf "$VENV"
    "$(pick_python)" -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip setuptools wheel
  fi
}

# What must import for the app to run; a venv where it does not is rebuilt.
HEALTH_CHECK='import engine, desktop_app, torch, torchvision, diffusers, llama_cpp, PySide6, cv2, pydensecrf.densecrf
assert PySide6.__version__'

pip_install() {
  # Two cores build llama.cpp in ~15 min; pip caches the wheel so later venvs reuse it.
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"
  "$PY" -m pip install -q --upgrade pip setuptools wheel
  "$PY" -m pip install -q -e "$REPO$1"
}

ensure_python_packages() {
  # The stamp holds a hash of what decides the install (line 1) and the extras installed with
  # it (line 2); unchanged → no pip run at all. A venv that has the test extras serves the app
  # as it is, and run-tests after run-app installs the test extras once. On x86 the app gets
  # the OpenVINO extra (the dataset's inpainting, measured faster there); the test extras
  # include it on x86 too.
  local stamp_file="$VENV/.mycanvas-stamp" base want="" have="" extras
  base="$(cat "$REPO/pyproject.toml" "$REPO/scripts/bootstrap.sh" | sha256sum | cut -c1-16)-$REPO"
  case "$(uname -m)" in x86_64|amd64|AMD64) want="[openvino]" ;; esac
  [ "$WITH_TESTS" = 1 ] && want="[test]"
  if [ -f "$stamp_file" ] && [ "$(sed -n 1p "$stamp_file")" = "$base" ]; then
    have="$(sed -n 2p "$stamp_file")"
    if { [ "$have" = "$want" ] || [ "$have" = "[test]" ]; } &&
       "$PY" -c 'import engine, desktop_app' 2>/dev/null; then
      return 0
    fi
  elif [ -f "$stamp_file" ]; then
    have="$(sed -n 2p "$stamp_file")"  # what changed is reinstalled with the extras it had
  fi
  extras="$want"
  [ "$have" = "[test]" ] && extras="[test]"
  log "installing Python packages (first run: several minutes; llama-cpp-python compiles once)"
  pip_install "$extras"
  if ! "$PY" -c "$HEALTH_CHECK" >/dev/null 2>&1 || ! "$PY" -m pip check >/dev/null 2>&1; then
    # An upgrade or downgrade over an old venv can leave it inconsistent; start clean.
    log "the virtual environment is inconsistent after the install; rebuilding it"
    rm -rf "$VENV"
    ensure_venv
    pip_install "$extras"
    "$PY" -c "$HEALTH_CHECK" || { log "the install is broken even in a new venv"; exit 1; }
  fi
  printf '%s\n%s\n' "$base" "$extras" > "$stamp_file"
}

ensure_system_packages
ensure_venv
ensure_python_packages
export PATH="$VENV/bin:$PATH"
