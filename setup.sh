#!/bin/sh
# Fresh Debian 12 machine -> stackwright installed in .venv, the lab's Debian packages present,
# and the plan of the bundled three-node example on screen (offline: nothing is contacted).
set -eu
cd "$(dirname "$0")"

# the lab (ethtool: lab/supervisor.py wire_checksums), verify --tempest (it pings floating IPs) and
# verify --ui (a headless chromium driven by chromium-driver; tesseract reads the VM's console)
LAB_PACKAGES="debootstrap systemd-container bridge-utils iproute2 nftables openssh-client python3-venv ethtool iputils-ping chromium chromium-driver tesseract-ocr"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=""
  for pkg in $LAB_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
else
  echo "note: not root, skipping the lab's Debian packages ($LAB_PACKAGES)" >&2
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
.venv/bin/stackwright plan examples/seed.yaml
