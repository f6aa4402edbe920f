#!/usr/bin/env bash
# Install (or upgrade) flowlib-operator into the current kubectl context and wait until it runs.
#
#   hack/deploy.sh [KUSTOMIZE_DIR]      default: deploy/ (cluster-wide); or deploy/overlays/namespaced, ...
#   hack/deploy.sh --dry-run [DIR]      render and print the commands without touching a cluster
#
# A single `kubectl apply -k` works too (the operator creates its own peering object at start), but
# this script applies the CRDs first and waits until they are Established: on upgrades the new CRDs
# are then served before the operator that needs them starts, and the rollout is waited for.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
dir=deploy
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) dir=$arg ;;
  esac
done
KUBECTL=${KUBECTL:-kubectl}
ROLLOUT_TIMEOUT=${ROLLOUT_TIMEOUT:-180s}

run() {
  echo "+ $*" >&2
  if [[ $dry_run == 0 ]]; then "$@"; fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Rendering needs no cluster: it runs in --dry-run too, so a broken kustomization fails early.
"$KUBECTL" kustomize "$dir" > "$work/all.yaml"
# kustomize prints documents separated by '---' lines with `kind:` at column 0: keep the CRDs.
awk '
  function flush() { if (doc ~ /(^|\n)kind: CustomResourceDefinition\n/) printf "---\n%s", doc; doc = "" }
  /^---$/ { flush(); next }
  { doc = doc $0 "\n" }
  END { flush() }
' "$work/all.yaml" > "$work/crds.yaml"
if ! grep -q '^kind: CustomResourceDefinition$' "$work/crds.yaml"; then
  echo "deploy.sh: $dir renders no CustomResourceDefinition" >&2
  exit 1
fi
echo "rendered $dir: $(grep -c '^kind:' "$work/all.yaml") objects, $(grep -c '^kind:' "$work/crds.yaml") CRDs" >&2

run "$KUBECTL" apply -f "$work/crds.yaml"
run "$KUBECTL" wait --for condition=Established --timeout=60s -f "$work/crds.yaml"
run "$KUBECTL" apply -f "$work/all.yaml"
run "$KUBECTL" -n flowlib-system rollout status deployment/flowlib-operator --timeout="$ROLLOUT_TIMEOUT"
