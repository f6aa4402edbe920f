"""`flowctl run --secret-env NAME`: the variable's value is masked in all flowctl prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.flowctl.conftest import flowctl

SECRET = "local-s3cret-9d2b"
FLOW = """\
nodes:
  talk:
    run: {python: "print('printed', __import__('os').environ['TOKEN'])"}
    next: {default: fail}
  fail:
    run: {shell: 'echo said {{ env.TOKEN }}; echo "denied for $TOKEN" >&2; exit 7'}
"""


@pytest.fixture
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TOKEN", SECRET)
    path = tmp_path / "leaky.yaml"
    path.write_text(FLOW)
    return path


def test_secret_env_masks_the_log_the_summary_and_the_status_file(flow: Path, tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    done = flowctl("run", "--secret-env", "TOKEN", "--status-file", status_file, flow)
    assert done.returncode == 1
    written = done.stdout + done.stderr + status_file.read_text()
    assert SECRET not in written
    for line in ("stdout: printed ***", "stdout: said ***", "stderr: denied for ***"):
        assert line in done.stdout, f"{line!r} missing from:\n{done.stdout}"
    [summary] = [line for line in done.stdout.splitlines() if line.startswith("Failed: ")]
    assert summary.endswith("exited with status 7: denied for ***")
    assert json.loads(status_file.read_text())["message"].endswith("exited with status 7: denied for ***")


def test_secret_env_masks_the_json_status(flow: Path) -> None:
    done = flowctl("run", "--json", "--secret-env", "TOKEN", "--secret-env", "NOT_SET_ANYWHERE", flow)
    assert done.returncode == 1
    assert SECRET not in done.stdout + done.stderr
    assert json.loads(done.stdout)["nodes"]["fail"]["message"].endswith("denied for ***")
    assert "flowctl: --secret-env NOT_SET_ANYWHERE: the variable is not set; nothing to mask" in done.stderr


def test_without_secret_env_the_value_is_printed(flow: Path) -> None:
    done = flowctl("run", flow)
    assert f"denied for {SECRET}" in done.stdout  # what the option is for: nothing is guessed
