# syntax=docker/dockerfile:1
# One image for the operator (`flowlib-operator`) and the runner pods (`flowlib-runner`).
# Build: hack/image.sh (docker or podman). Rules this file keeps are checked by tests/deploy/test_dockerfile.py.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- builder: the project's wheel and the wheels of everything it depends on ---------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY flowlib ./flowlib
COPY flowlib_api ./flowlib_api
COPY runner ./runner
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime: installed from those wheels only, no compilers, no sources -------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="flowlib-operator" \
      org.opencontainers.image.description="Kubernetes operator and runner for flowlib flows (Flow and FlowRun CRDs)" \
      org.opencontainers.image.source="https://github.com/flowlib/flowlib-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="flowlib-operator authors" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# The runner Job and the operator Deployment both run as this UID (jobspec.RUNNER_UID); it has a
# passwd entry so that getpass/home lookups work, and owns nothing in the image.
RUN groupadd --system --gid 65532 flowlib \
    && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin flowlib
# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels "flowlib-operator==${VERSION}" \
    && flowlib-operator --version \
    && python -c "import flowlib_runner.incluster.main"
WORKDIR /tmp
USER 65532:65532
# Exec form only: nothing at run time needs a shell. The Deployment runs `flowlib-operator`,
# runner Jobs run `flowlib-runner` (both override this).
CMD ["flowlib-operator", "--help"]
