# Every target sets up its own virtualenv, so a fresh clone needs nothing but python3 >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: help venv run run-flowlib test lint typecheck unit bench crds crds-check docs sim image deploy e2e clean

help:
	@echo "make run     - run an example flow locally with flowctl (sets itself up)"
	@echo "make test    - lint (ruff, import layering), type-check and run the whole test suite (sets itself up)"
	@echo "make bench   - run the benchmarks (ratios against baselines measured in the same run)"
	@echo "make crds    - regenerate crds/ from the pydantic models"
	@echo "make sim     - start the Kubernetes API simulator (kubeconfig in .sim/kubeconfig)"
	@echo "make image   - build the operator/runner image (docker or podman)"
	@echo "make deploy  - install deploy/ (CRDs first) into the current cluster; DIR=deploy/overlays/... for another"
	@echo "make docs    - regenerate docs/reference.md from the CRDs"
	@echo "make e2e     - kind cluster, image, deploy, operator scenarios, teardown (needs Docker)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

run: venv
	$(BIN)/flowctl run examples/map-reduce.yaml

run-flowlib: venv
	$(BIN)/python examples/hello_flowlib.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest

test: lint typecheck unit

bench: venv
	$(BIN)/python -m benchmarks

crds: venv
	$(BIN)/python hack/crdgen.py --dir crds

crds-check: venv
	$(BIN)/python hack/crdgen.py --dir crds --check

sim: venv
	@mkdir -p .sim
	$(BIN)/python -m tests.kubesim --kubeconfig .sim/kubeconfig

image:
	bash hack/image.sh

deploy:
	bash hack/deploy.sh $(or $(DIR),deploy)

docs: venv
	$(BIN)/python hack/gen_reference.py
	$(BIN)/python hack/gen_dashboard.py

e2e: venv
	bash hack/e2e-kind.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis .sim
