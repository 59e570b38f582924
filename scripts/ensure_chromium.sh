#!/bin/sh
# Make Debian's headless-capable Chromium (and its WebDriver) available for the UI test.
# Installs the `chromium` and `chromium-driver` packages with apt-get when they are missing
# and we are root with apt available; prints the chromium binary path on success.
# Exit codes: 0 available, 3 missing and cannot be installed here (not root / no apt-get),
# other non-zero: the install itself failed.
set -eu

find_chromium() {
    for name in chromium chromium-browser google-chrome; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if path=$(find_chromium) && command -v chromedriver >/dev/null 2>&1; then
    echo "$path"
    exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: chromium is missing and cannot be installed here (needs root and apt-get)" >&2
    exit 3
fi

export DEBIAN_FRONTEND=noninteractive
# A second process running apt at the same time holds the dpkg lock: wait for it.
apt-get -o DPkg::Lock::Timeout=300 update -q >&2
apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
    chromium chromium-driver fonts-liberation >&2

path=$(find_chromium) || { echo "ensure_chromium: chromium still missing after install" >&2; exit 1; }
echo "$path"
