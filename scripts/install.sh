#!/usr/bin/env bash
# Installs pvwatch into ./.venv. With --system also installs the Debian packages the test suite
# drives for real: Prometheus + promtool, Alertmanager + amtool, Chromium + ChromeDriver, OpenSSL.
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=0
[[ "${1:-}" == "--system" ]] && want_system=1

sudo_cmd=""
[[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"

apt_install() {
    echo "installing Debian packages: $*"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "$@"
}

if (( want_system )); then
    missing=()
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    command -v openssl >/dev/null || missing+=(openssl)  # the dashboard TLS test makes a self-signed certificate
    if (( ${#missing[@]} )); then
        apt_install "${missing[@]}"
        # The Debian packages start daemons on a real system; the tests start their own on loopback.
        for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
            $sudo_cmd systemctl disable --now "$svc" >/dev/null 2>&1 || true
        done
    fi
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "pvwatch needs Python 3.11 or newer" >&2; exit 1; }
    # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) in a separate package, absent on a fresh machine.
    if ! "$python" -c 'import ensurepip' 2>/dev/null && command -v apt-get >/dev/null; then
        apt_install "python3.$("$python" -c 'import sys; print(sys.version_info.minor)')-venv"
    fi
    "$python" -m venv .venv
fi
stamp=.venv/.pvwatch-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]'
    touch "$stamp"
fi
