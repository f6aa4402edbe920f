#!/usr/bin/env bash
# Build the flowlib-operator image (operator and runner) with docker or podman.
#
#   hack/image.sh                 build ghcr.io/flowlib/flowlib-operator:<version from pyproject.toml>
#   hack/image.sh --print-image   print the image reference and exit
#   hack/image.sh --dry-run       print the build command instead of running it (no engine needed)
#
# Environment: IMAGE (full reference), IMAGE_REPO, VERSION, CONTAINER_ENGINE (docker|podman).
# The default reference is the operator's default runner image (flowlib_operator.main.DEFAULT_IMAGE).
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
print_image=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    --print-image) print_image=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "image.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

VERSION=${VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)}
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/flowlib/flowlib-operator}
IMAGE=${IMAGE:-$IMAGE_REPO:$VERSION}
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

if [[ $print_image == 1 ]]; then
  echo "$IMAGE"
  exit 0
fi

# A docker CLI without a reachable daemon is no use: try the next engine.
engine=${CONTAINER_ENGINE:-}
if [[ -z $engine ]]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v podman >/dev/null 2>&1; then
    engine=podman
  fi
fi

cmd=("${engine:-docker}" build --file Dockerfile --tag "$IMAGE"
  --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" .)

if [[ $dry_run == 1 ]]; then
  echo "+ ${cmd[*]}"
  exit 0
fi
if [[ -z $engine ]]; then
  echo "image.sh: no container engine: install docker (with a running daemon) or podman," \
    "or set CONTAINER_ENGINE" >&2
  exit 1
fi
# RUN --mount in the Dockerfile needs BuildKit (the default since Docker 23; podman has it built in).
export DOCKER_BUILDKIT=1
echo "+ ${cmd[*]}" >&2
"${cmd[@]}"
echo "built $IMAGE" >&2
