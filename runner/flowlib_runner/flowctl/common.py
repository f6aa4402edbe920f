"""What every `flowctl` command shares: exit codes, how `-p` and `--input` are read, and where the
cluster is (`--kubeconfig`, `--context`, `-n/--namespace`, before or after the subcommand).

Why these exit codes: scripts and CI branch on them -- 0 succeeded, 1 failed, 2 invalid definition
(or bad usage, as click does), 130 cancelled (the shell's code for an interrupted command), and 3
when the cluster could not be asked (``clusterapi.EXIT_CLUSTER``), so a script can tell "the run
failed" from "nobody knows"; 4 when a local run stopped at an approval node (``Suspended``: continue
it with ``flowctl run --resume DIR --approve NODE=ACTION``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import yaml

from flowlib_api.params import ParamSpec, coerce_text, run_params_problems

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_CANCELLED, EXIT_SUSPENDED = 0, 1, 2, 130, 4
EXIT_CODES = {"Succeeded": EXIT_OK, "Failed": EXIT_FAILED, "Cancelled": EXIT_CANCELLED, "Suspended": EXIT_SUSPENDED}

F = TypeVar("F", bound=Callable[..., Any])


def parse_param(text: str) -> tuple[str, Any]:
    """`key=value`; the value is read as JSON when it parses (`n=3`, `debug=true`), else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="-p/--param")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def typed_params(
    texts: tuple[str, ...],
    schema: Mapping[str, ParamSpec],
    flow_params: Mapping[str, Any] | None,
    *,
    base: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """`-p` values read as the flow declares them, and every problem of the params a run would get.

    A CLI value is text, so a declared param's text is read as its type (`-p n=20000` an integer,
    `-p name=007` the string "007"): what a user of a command line expects. The FlowRun API never
    coerces (``flowlib_api.params``). ``base``: params the run already has (a resumed run's).
    """
    values: dict[str, Any] = {}
    for text in texts:
        key, parsed = parse_param(text)
        values[key] = coerce_text(schema.get(key), text.partition("=")[2], parsed)
    return values, run_params_problems(schema, flow_params, {**(base or {}), **values})


def refuse_params(label: str, problems: list[str]) -> None:
    """Say each param problem (``-p`` names it as ``params.KEY``) and exit 2, as for an invalid flow."""
    for problem in problems:
        click.echo(f"{label}: {problem}", err=True)
    click.echo(f"{label}: invalid params ({len(problems)} problem(s)); set them with -p KEY=VALUE", err=True)
    raise SystemExit(EXIT_INVALID)


def parse_input(text: str | None) -> dict[str, Any]:
    """The initial shared store from `--input`: inline JSON, or `@file` holding JSON or YAML."""
    if text is None:
        return {}
    source = "--input"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise click.BadParameter(f"cannot read {path}: {error.strerror}", param_hint=source) from error
        source = str(path)
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON, so both are accepted
    except yaml.YAMLError as error:
        raise click.BadParameter(f"{source} is neither JSON nor YAML: {error}", param_hint="--input") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise click.BadParameter(f"{source} must hold an object (the shared store), not {type(data).__name__}")
    return data


@dataclass
class ClusterTarget:
    """Where the cluster commands talk to; set by the options of the group and of the command."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


_TARGET_FIELDS = ("kubeconfig", "context", "namespace")


def target_options(command: F) -> F:
    """`--kubeconfig`, `--context`, `-n/--namespace`, as kubectl spells them (options only)."""
    command = click.option(
        "-n",
        "--namespace",
        metavar="NS",
        help="Namespace of the runs (default: the kubeconfig context's namespace, else default).",
    )(command)
    command = click.option("--context", metavar="NAME", help="kubeconfig context to use (default: current).")(command)
    command = click.option(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config; in a pod, its service account).",
    )(command)
    return command


def cluster_options(command: F) -> F:
    """The target options on a subcommand; a value given after the subcommand wins over one given
    before it (`flowctl -n a status -n b RUN` asks namespace b), and one given only before it is used
    (`flowctl -n NS status RUN`, as kubectl users type it)."""

    @functools.wraps(command)
    def merged(*args: Any, **kwargs: Any) -> Any:
        context = click.get_current_context()
        group = context.find_object(ClusterTarget) or ClusterTarget()
        for name in _TARGET_FIELDS:
            if kwargs.get(name) is None:
                kwargs[name] = getattr(group, name)
        return command(*args, **kwargs)

    return target_options(cast(F, merged))
