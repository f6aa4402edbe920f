"""pytest fixtures for the simulator (enabled in tests/conftest.py).

- ``kubesim`` (function scope): a fresh simulator per test.
- ``kubesim_session`` (session scope): one simulator shared by the session.
- ``kubesim_namespace`` (function scope): a fresh namespace in ``kubesim_session``, deleted after.

Each yields a ``Simulator``: ``.url``, ``.kubeconfig``, ``.ca_file``, ``.faults``,
``.token_for(ns, sa)``, ``.kubeconfig_for(ns, sa)``, ``.kubectl(...)``, ``.api_client()`` ...
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from .simulator import Simulator


@pytest.fixture
def kubesim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator(workdir=tmp_path_factory.mktemp("kubesim")).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def kubesim_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator(workdir=tmp_path_factory.mktemp("kubesim-session")).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def kubesim_namespace(kubesim_session: Simulator) -> Iterator[str]:
    name = f"t-{secrets.token_hex(4)}"
    kubesim_session.kubectl(
        "create", "-f", "-", input=f'{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}"}}}}'
    )
    try:
        yield name
    finally:
        kubesim_session.kubectl("delete", "namespace", name, "--wait=false", check=False)
