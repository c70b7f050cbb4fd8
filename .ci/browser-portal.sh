#!/usr/bin/env bash
# The portal's browser test: headless Chromium (Debian's chromium package)
# walks the customers' portal (portal/browser_test.go). It rewrites the
# screenshots in docs/img/portal-*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
if ! command -v chromium >/dev/null; then
  echo "ci: installing chromium"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-dejavu-core
fi
echo "ci: go test -tags browser ./portal/..."
go test -tags browser -count=1 -timeout 10m ./portal/...
