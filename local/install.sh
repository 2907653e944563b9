#!/usr/bin/env bash
# Installs one requirements file into the project's virtual environment, for the Makefile's install stamps:
#   local/install.sh PYTHON VENV UV_VERSION REQUIREMENTS_FILE "what it is for"
# Creates the environment when it is missing and installs with uv (pinned; fetched from PyPI into VENV/.uv,
# beside the environment, not into it) where uv can be had, otherwise with pip. One line per step, no wall of
# per-package output; an installer's own output is shown only when it fails.
set -euo pipefail

python=$1 venv=$2 uv_version=$3 requirements=$4 what=$5
uv=$venv/.uv/bin/uv
log=$(mktemp)
trap 'rm -f "$log"' EXIT
started=$SECONDS

step() { printf '==> %s\n' "$*"; }
elapsed() { printf '    done in %ss\n' "$((SECONDS - started))"; }
show_log_and_fail() { cat "$log" >&2; echo "$1" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
        { echo "Python 3.11+ is needed (found $("$python" --version 2>&1)); set PYTHON=python3.12 for example" >&2; exit 1; }
    step "creating $venv with $("$python" --version 2>&1)"
    # No pip seeded into it (ensurepip is the slowest part of `python -m venv`): uv installs pip with the rest.
    "$python" -m venv --without-pip "$venv"
fi

# uv, pinned, from PyPI through whichever pip there is: the interpreter's, else one ensurepip puts in the venv.
if [ "$("$uv" --version 2>/dev/null | cut -d" " -f1,2)" != "uv $uv_version" ]; then
    step "fetching the installer (uv $uv_version, from PyPI)"
    fetch_uv() {
        PIP_ROOT_USER_ACTION=ignore "$1" -m pip install --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: --upgrade --target "$venv/.uv" "uv==$uv_version" >"$log" 2>&1
    }
    fetch_uv "$python" || { "$venv/bin/python" -m ensurepip --default-pip >>"$log" 2>&1 && fetch_uv "$venv/bin/python"; } ||
        { rm -rf "$venv/.uv"; echo "    uv could not be had; installing with pip instead (slower)"; }
fi

with_pip() {
    step "installing $what ($requirements) with pip"
    { "$venv/bin/python" -m pip --version >/dev/null 2>&1 || "$venv/bin/python" -m ensurepip --default-pip; } >"$log" 2>&1 ||
        show_log_and_fail "error: no pip in $venv and ensurepip failed (on Debian/Ubuntu: apt install python3-venv)"
    PIP_ROOT_USER_ACTION=ignore "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$requirements" >"$log" 2>&1 || show_log_and_fail "error: pip could not install $requirements (above)"
}

if [ -x "$uv" ]; then
    step "installing $what ($requirements) with uv"
    # uv's summary lines (resolved, downloading, prepared, installed) stay; the one-per-package list goes.
    set +e
    "$uv" pip install --python "$venv/bin/python" -r "$requirements" 2>&1 |
        { grep --line-buffered -v -E '^ [-+~] |^ *(Building|Built|Downloaded) ' || true; } | sed -u 's/^/    /'
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" != 0 ]; then
        echo "    uv failed (above); trying pip" >&2
        with_pip
    fi
else
    with_pip
fi
elapsed
