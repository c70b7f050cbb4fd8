#!/usr/bin/env bash
# The compatibility suite (compat/): installs the drivers and ORMs of
# legacy CRM apps from Debian and npm, then runs each through pgcloak as
# the sales rep and as the DBA (go test -tags compat ./compat/).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
pkgs=(python3-psycopg2 python3-django python3-sqlalchemy ruby-pg ruby-activerecord
      libpostgresql-jdbc-java default-jdk-headless php-cli php-pgsql)
# Node: Debian's nodejs and npm, unless a node with its own npm is there
# (NodeSource's nodejs ships npm and conflicts with Debian's).
command -v node >/dev/null || pkgs+=(nodejs npm)
echo "compat: installing ${pkgs[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${pkgs[@]}"
npm=(npm)
if ! command -v npm >/dev/null; then
  if [ -f /usr/lib/node_modules/npm/bin/npm-cli.js ]; then
    npm=(node /usr/lib/node_modules/npm/bin/npm-cli.js)
  else
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq npm
  fi
fi
(cd compat/node && "${npm[@]}" ci --no-audit --no-fund)

echo "compat: go test -tags compat ./compat/"
go test -tags compat -count=1 -v -timeout 20m ./compat/ 2>&1 | grep -v '^=== RUN'
