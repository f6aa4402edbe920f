#!/usr/bin/env bash
# End to end on a real cluster (`make e2e`): create a kind cluster, build the image, load it into
# the cluster, install deploy/, wait for the operator, run the operator scenarios of tests/operator and flowctl's cluster commands (tests/flowctl)
# against the cluster (FLOWLIB_E2E_KUBECONFIG), and delete the cluster whatever happened.
#
#   hack/e2e-kind.sh              needs docker (or podman) and network access for kind's node image
#   hack/e2e-kind.sh --dry-run    checks everything that needs no container engine (the kind config,
#                                 the kustomize rendering, the image build command) and prints every
#                                 command it would run
#
# Environment: KIND (binary; else `kind` on PATH, else downloaded), KIND_VERSION, CLUSTER_NAME,
# KEEP_CLUSTER=1 (leave the cluster for debugging), PYTEST_ARGS, PYTHON (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "e2e-kind.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

KIND_VERSION=${KIND_VERSION:-v0.27.0}
KUBERNETES_MINOR=1.32
CONFIG=hack/kind-config.yaml
CLUSTER_NAME=${CLUSTER_NAME:-flowlib-e2e}
PYTHON=${PYTHON:-.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=python3
WORK=${WORK:-$(mktemp -d)}
KUBECONFIG_FILE=$WORK/kubeconfig

run() {
  echo "+ $*" >&2
  if [[ $dry_run == 0 ]]; then "$@"; fi
}

# --- checks that need no container engine (also in --dry-run) -------------------------------------
echo "== static checks" >&2
"$PYTHON" hack/kindconfig.py "$CONFIG" "$KUBERNETES_MINOR" >&2
kubectl kustomize deploy/ > "$WORK/deploy.yaml"
echo "deploy/ renders $(grep -c '^kind:' "$WORK/deploy.yaml") objects" >&2
IMAGE=$(hack/image.sh --print-image)
if ! grep -q "image: $IMAGE\$" "$WORK/deploy.yaml"; then
  echo "e2e-kind.sh: deploy/ does not run $IMAGE, the image this script builds and loads" >&2
  exit 1
fi

# --- tools ------------------------------------------------------------------------------------------
engine=docker
if ! { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }; then
  if command -v podman >/dev/null 2>&1; then
    engine=podman
    export KIND_EXPERIMENTAL_PROVIDER=podman
  elif [[ $dry_run == 0 ]]; then
    echo "e2e-kind.sh: needs docker (with a running daemon) or podman; try --dry-run" >&2
    exit 1
  fi
fi
KIND=${KIND:-$(command -v kind || true)}
if [[ -z $KIND ]]; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/flowlib
  KIND=$cache/kind-$KIND_VERSION
  if [[ ! -x $KIND ]]; then
    arch=$(uname -m); [[ $arch == x86_64 ]] && arch=amd64; [[ $arch == aarch64 ]] && arch=arm64
    run mkdir -p "$cache"
    run curl -fsSL -o "$KIND" "https://kind.sigs.k8s.io/dl/$KIND_VERSION/kind-linux-$arch"
    run chmod +x "$KIND"
  fi
elif [[ $dry_run == 0 ]] && ! "$KIND" version | grep -q "$KIND_VERSION"; then
  echo "e2e-kind.sh: warning: $KIND is not kind $KIND_VERSION; its default node images may differ" >&2
fi

# --- the cluster ------------------------------------------------------------------------------------
cleanup() {
  status=$?
  if [[ $status != 0 && $dry_run == 0 ]]; then
    echo "== diagnostics (exit $status)" >&2
    KUBECONFIG=$KUBECONFIG_FILE kubectl get all,flows,flowruns -A -o wide >&2 || true
    KUBECONFIG=$KUBECONFIG_FILE kubectl -n flowlib-system logs deployment/flowlib-operator --tail=200 >&2 || true
    KUBECONFIG=$KUBECONFIG_FILE kubectl get events -A --sort-by=.lastTimestamp >&2 || true
  fi
  if [[ ${KEEP_CLUSTER:-0} == 1 ]]; then
    echo "KEEP_CLUSTER=1: cluster $CLUSTER_NAME kept (KUBECONFIG=$KUBECONFIG_FILE)" >&2
  else
    run "$KIND" delete cluster --name "$CLUSTER_NAME" || true
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT INT TERM

echo "== cluster" >&2
run "$KIND" create cluster --name "$CLUSTER_NAME" --config "$CONFIG" --kubeconfig "$KUBECONFIG_FILE" --wait 180s

echo "== image" >&2
if [[ $dry_run == 1 ]]; then
  hack/image.sh --dry-run >&2
else
  CONTAINER_ENGINE=$engine hack/image.sh
fi
if [[ $engine == podman ]]; then
  run podman save --format docker-archive -o "$WORK/image.tar" "$IMAGE"
  run "$KIND" load image-archive "$WORK/image.tar" --name "$CLUSTER_NAME"
else
  run "$KIND" load docker-image "$IMAGE" --name "$CLUSTER_NAME"
fi

echo "== deploy" >&2
deploy_args=(deploy/)
[[ $dry_run == 1 ]] && deploy_args=(--dry-run deploy/)
KUBECONFIG=$KUBECONFIG_FILE hack/deploy.sh "${deploy_args[@]}"

echo "== scenarios" >&2
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words
run env FLOWLIB_E2E_KUBECONFIG="$KUBECONFIG_FILE" FLOWLIB_E2E_IMAGE="$IMAGE" \
  "$PYTHON" -m pytest tests/operator tests/flowctl/test_cluster.py -p no:cacheprovider ${PYTEST_ARGS:-}
echo "== e2e passed" >&2
