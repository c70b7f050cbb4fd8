#!/usr/bin/env bash
# CI for deploy/: lint and render the Helm chart with Helm built from its Go
# module, check the renders (deploy/manifestcheck), check that the plain
# manifest is the current render, and check and unit-test the Prometheus
# alert rules and the dashboard's queries with promtool.
#
#   .ci/deploy.sh            check
#   UPDATE=1 .ci/deploy.sh   also rewrite deploy/kubernetes/pgcloak.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

HELM_VERSION=v4.3.2   # helm.sh/helm/v4, built from source by the Go toolchain
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! command -v promtool >/dev/null; then
  echo "deploy: installing prometheus (for promtool)"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

echo "deploy: building helm $HELM_VERSION from its Go module (a few minutes the first time)"
GOBIN="$tmp/bin" GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
helm="$tmp/bin/helm"
"$helm" version

chart=deploy/helm/pgcloak
echo "deploy: helm lint"
"$helm" lint --strict "$chart"
"$helm" lint --strict "$chart" --set serviceMonitor.enabled=true --set networkPolicy.database.enabled=true \
  --set networkPolicy.database.podSelector.app=postgres --set test.proxyAddresses=10.42.16.0/24

echo "deploy: helm template + manifestcheck"
"$helm" template pgcloak "$chart" >"$tmp/default.yaml"
"$helm" template pgcloak "$chart" --set serviceMonitor.enabled=true --set networkPolicy.database.enabled=true \
  --set networkPolicy.database.podSelector.app=postgres --set test.proxyAddresses=10.42.16.0/24 \
  --set image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000 >"$tmp/full.yaml"
go run ./deploy/manifestcheck "$tmp/default.yaml"
go run ./deploy/manifestcheck "$tmp/full.yaml"
grep -q "kind: ServiceMonitor" "$tmp/full.yaml"
# The chart refuses an unpinned image.
if "$helm" template pgcloak "$chart" --set image.tag=latest >/dev/null 2>&1; then
  echo "deploy: the chart rendered image.tag=latest"; exit 1
fi

echo "deploy: deploy/kubernetes/pgcloak.yaml is the chart's render"
{
  sed -n '1,/^# docs\/deploy.md/p' deploy/kubernetes/pgcloak.yaml
  "$helm" template pgcloak "$chart" --skip-tests --set setup.enabled=false
} >"$tmp/plain.yaml"
if [ "${UPDATE:-}" = 1 ]; then
  cp "$tmp/plain.yaml" deploy/kubernetes/pgcloak.yaml
fi
if ! diff -u deploy/kubernetes/pgcloak.yaml "$tmp/plain.yaml"; then
  echo "deploy: deploy/kubernetes/pgcloak.yaml is stale: run UPDATE=1 .ci/deploy.sh"; exit 1
fi

echo "deploy: promtool"
promtool check rules deploy/prometheus/alerts.yaml
(cd deploy/prometheus && promtool test rules alerts_test.yaml)
go run deploy/grafana/exprs.go deploy/grafana/pgcloak.json >"$tmp/dashboard-rules.yaml"
promtool check rules "$tmp/dashboard-rules.yaml"
echo "deploy: ok"
