#!/usr/bin/env bash
# nbhosting on a Debian 12 host, as root. Idempotent: run it again at will.
#
#   ./setup.sh serve   install what is missing, build the notebook image (cached), create a demo course,
#                      then run nbhosting (app + Caddy) in the foreground on https://localhost:8443/
#   ./setup.sh test    install what is missing (test tools too), then lint, type-check and run every test
#
# Settings come from NBH_* environment variables (see nbhosting_core/settings.py); the venv lives in
# $NBH_VENV (default /opt/nbhosting/venv).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

VENV=${NBH_VENV:-/opt/nbhosting/venv}
PACKAGES=(podman runc uidmap slirp4netns fuse-overlayfs caddy mmdebstrap python3 python3-venv python3-pip
          ca-certificates procps util-linux passwd e2fsprogs nftables git)
# nodejs: the pages' scripts run in it (tests/server/test_page_scripts.py)
TEST_PACKAGES=(chromium chromium-driver nodejs)

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "setup.sh: run me as root (nbhosting creates Linux users and runs podman for them)" >&2
        exit 1
    fi
}

install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# The app and Caddy run as their own unprivileged users: the venv's Python and nbhosting's code must be readable
# by every user. Debian's python3 is; a Python under /root (pyenv, ...) is not, so the venv is Debian's.
PYTHON=/usr/bin/python3

readable_by_all() {  # every folder on the way to $1 lets others in
    local path
    path=$(readlink -f "$1")
    while [ "$path" != / ]; do
        [ $(( 0$(stat -c %a "$path") & 01 )) -ne 0 ] || return 1
        path=$(dirname "$path")
    done
}

install_venv() {
    local extras=$1 stamp editable=-e
    readable_by_all . || editable=  # a checkout others cannot read (e.g. in /root) is copied into the venv
    stamp="$VENV/.nbhosting-$(sha256sum pyproject.toml | cut -c1-16)-$extras-$(pwd | sha256sum | cut -c1-8)$editable"
    if [ -e "$VENV/pyvenv.cfg" ] && ! grep -qx "home = $(dirname "$PYTHON")" "$VENV/pyvenv.cfg"; then
        say "making the venv $VENV again on Debian's Python (its Python is not one every user may run)"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the venv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    if [ ! -e "$stamp" ] || [ -z "$editable" ]; then
        say "installing nbhosting ($extras) into $VENV${editable:+ (editable)}"
        "$VENV/bin/pip" install -q --disable-pip-version-check $editable ".[$extras]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
        "$VENV/bin/python" -c "import nbhosting_core, nbhosting_server" || { echo "setup.sh: install failed" >&2; exit 1; }
        rm -f "$VENV"/.nbhosting-*
        touch "$stamp"
    fi
}

enable_egress() {
    # slirp4netns (network egress for students' kernels) needs /dev/net/tun usable by every user:
    # mode 0666 is Debian's default; some hosts ship it 0600.
    if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
        say "making /dev/net/tun usable by students' containers (chmod 0666, Debian's default)"
        chmod 0666 /dev/net/tun
    fi
}

build_image() {
    say "building the notebook image (cached: instant when the Containerfile did not change)"
    "$VENV/bin/nbh" image
}

case "${1:-}" in
    serve)
        need_root
        install_packages "${PACKAGES[@]}"
        install_venv test
        enable_egress
        build_image >/dev/null
        "$VENV/bin/nbh" doctor >&2
        say "starting nbhosting (Ctrl-C stops it)"
        exec "$VENV/bin/nbh" serve --demo
        ;;
    test)
        need_root
        install_packages "${PACKAGES[@]}" "${TEST_PACKAGES[@]}"
        install_venv test
        enable_egress
        build_image
        say "lint and format (ruff), types (mypy --strict)"
        "$VENV/bin/ruff" check nbhosting_core nbhosting_server tests bench
        "$VENV/bin/ruff" format --check nbhosting_core nbhosting_server tests bench
        "$VENV/bin/mypy"
        say "tests: unit, server, integration (rootless podman), end to end (Caddy + chromium)"
        exec "$VENV/bin/python" -m pytest -p no:cacheprovider "${@:2}"
        ;;
    *)
        sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
