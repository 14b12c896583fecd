"""Cached rebuild + push of an unchanged context: deploy-agent's DockerBuilder vs the docker CLI.

Both build ``examples/web`` (same build args, classic builder, host network) and push the result
to the sandbox registry (a local ``docker-registry``, ECR's stand-in), on the same Docker engine:

- deploy-agent: ``DockerBuilder.build(context, tag=...)`` + ``DockerBuilder.push(repository, tag)``,
  the calls a worker's build and push stages make (docker-py ``APIClient``, Engine API streams);
- docker CLI: ``docker build --network host -t REF ...`` + ``docker push REF`` as subprocesses
  (``DOCKER_BUILDKIT=0``: the classic builder docker-py drives, so both use the same cache).

One warm-up round fills the build cache and the registry; then ``--runs`` rounds alternate which tool
goes first. Each run is timed end to end (build + push; for the CLI this includes starting the two
``docker`` processes). Every timed run must show a cache hit for every build step ("Using cache")
and "Layer already exists" for every layer pushed, or the script says so and exits 1. Printed:
median (and min-max) build, push and total seconds per tool and the ratio deploy-agent / CLI.

Run from the repository root: ``source .sandbox/env && python bench/build_push.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from common import EXAMPLES, median

from deploy_agent.adapters.docker_builder import DockerBuilder
from ecs_sandbox.registry import LocalRegistry

CONTEXT = EXAMPLES / "web"
BUILD_ARGS = {"VERSION": "bench", "MODE": "ok"}


@dataclass
class Run:
    """One timed build + push by one tool, and the evidence that both were no-ops."""

    tool: str
    build: float
    push: float
    build_steps: int = 0
    cache_hits: int = 0
    layers: int = 0
    layers_existing: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.build + self.push

    def check(self) -> None:
        """Record what a fully cached rebuild and a no-op push would not show."""
        if self.build_steps == 0 or self.cache_hits < self.build_steps:
            self.problems.append(f"{self.tool}: {self.cache_hits}/{self.build_steps} build steps from cache")
        if self.layers == 0 or self.layers_existing < self.layers:
            self.problems.append(f"{self.tool}: {self.layers_existing}/{self.layers} layers already existed")


def _count_build(lines: list[str], run: Run) -> None:
    steps = [line for line in lines if line.startswith("Step ")]
    first_from = next((i for i, step in enumerate(steps) if " : FROM " in step), 0)
    # FROM steps and the ARGs before the first FROM never print a cache line; every other step does.
    run.build_steps = sum(" : FROM " not in step for step in steps[first_from:])
    run.cache_hits = sum("Using cache" in line for line in lines)


def _count_push(lines: list[str], run: Run) -> None:
    statuses = [line for line in lines if ": " in line and not line.startswith(("The push", "latest"))]
    layers = {line.split(": ", 1)[0] for line in statuses if line.split(": ", 1)[1] in _LAYER_ENDS}
    run.layers = len(layers)
    run.layers_existing = sum(line.endswith(": Layer already exists") for line in statuses)


_LAYER_ENDS = ("Layer already exists", "Pushed", "Mounted from")


def agent_run(builder: DockerBuilder, repository: str, tag: str) -> Run:
    """Build and push through DockerBuilder; return the timed run."""
    build_lines: list[str] = []
    push_lines: list[str] = []
    started = time.perf_counter()
    builder.build(CONTEXT, tag=f"{repository}:{tag}", build_args=BUILD_ARGS, on_log=build_lines.append)
    built = time.perf_counter()
    builder.push(repository, tag, on_progress=push_lines.append)
    run = Run("deploy-agent", built - started, time.perf_counter() - built)
    _count_build(build_lines, run)
    _count_push(push_lines, run)
    return run


def cli_run(repository: str, tag: str) -> Run:
    """Build and push with the docker CLI; return the timed run."""
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    args = [f"--build-arg={k}={v}" for k, v in BUILD_ARGS.items()]
    ref = f"{repository}:{tag}"
    started = time.perf_counter()
    build = subprocess.run(
        ["docker", "build", "--network", "host", "-t", ref, *args, str(CONTEXT)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    built = time.perf_counter()
    push = subprocess.run(["docker", "push", ref], env=env, capture_output=True, text=True, check=True)
    run = Run("docker CLI", built - started, time.perf_counter() - built)
    _count_build(build.stdout.splitlines(), run)
    _count_push([line.strip() for line in push.stdout.splitlines()], run)
    return run


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="timed runs per tool after one warm-up (default 5)"
    )
    args = parser.parse_args(argv)

    base = os.environ.get("DEPLOY_AGENT_BASE_IMAGE")
    if base:
        BUILD_ARGS["BASE"] = base
    workdir = Path(tempfile.mkdtemp(prefix="deploy-agent-bench-build-"))
    registry = LocalRegistry(0, workdir / "registry").start()
    engine = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    api = docker.APIClient(base_url=engine, timeout=900, version="auto")
    builder = DockerBuilder(api)
    tools: dict[str, Callable[[], Run]] = {
        "deploy-agent": lambda: agent_run(builder, f"{registry.host}/bench-agent", "cached"),
        "docker CLI": lambda: cli_run(f"{registry.host}/bench-cli", "cached"),
    }
    runs: list[Run] = []
    try:
        for warm_up in tools.values():
            warm_up()
        order = list(tools)
        for index in range(args.runs):
            for name in order if index % 2 == 0 else reversed(order):
                runs.append(tools[name]())
    finally:
        for repository in ("bench-agent", "bench-cli"):  # the tags only: the cached layers stay
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(f"{registry.host}/{repository}:cached")
        registry.stop()
        api.close()
        shutil.rmtree(workdir, ignore_errors=True)

    context = CONTEXT.relative_to(EXAMPLES.parent)
    print(f"cached rebuild + push of {context}, {args.runs} runs each (alternating order), medians")
    header = f"{'tool':<14}{'build s':>9}{'push s':>9}{'total s':>9}{'(min-max)':>13}"
    print(f"{header}  cached steps, layers already existing")
    medians: dict[str, float] = {}
    for name in tools:
        mine = [r for r in runs if r.tool == name]
        medians[name] = median([r.total for r in mine])
        evidence = {f"{r.cache_hits}/{r.build_steps}, {r.layers_existing}/{r.layers}" for r in mine}
        print(
            f"{name:<14}{median([r.build for r in mine]):>9.3f}{median([r.push for r in mine]):>9.3f}"
            f"{medians[name]:>9.3f}{_spread([r.total for r in mine]):>13}  {'; '.join(sorted(evidence))}"
        )
    ratio = medians["deploy-agent"] / medians["docker CLI"]
    print(f"ratio deploy-agent / docker CLI (median total): {ratio:.2f}")
    problems = []
    for run in runs:
        run.check()
        problems += run.problems
    for problem in sorted(set(problems)):
        print(f"NOT A NO-OP: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
