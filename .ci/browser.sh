#!/usr/bin/env bash
# Browser tests: the packages with tests behind the build tag "browser"
# (the report, the customer portal) drive a headless Chromium. Installs
# Chromium when it is missing, finds those packages, and runs their tests
# with the tag. The tests write the screenshots under docs/img and the pages
# of docs/ that show them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

if ! command -v chromium >/dev/null; then
  echo "ci: installing chromium"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi

# Every package with a file tagged browser. (As root, the tests start
# Chromium with --no-sandbox.)
pkgs=$(grep -l --include='*_test.go' -r '^//go:build browser' --exclude-dir=.git . | xargs -r -n1 dirname | sort -u | sed 's|^\./||; s|^|./|')
if [ -z "$pkgs" ]; then
  echo "ci: no browser tests found"; exit 1
fi
echo "ci: go vet -tags browser $pkgs"
go vet -tags browser $pkgs
echo "ci: go test -tags browser $pkgs"
go test -tags browser -count=1 -timeout 20m $pkgs
