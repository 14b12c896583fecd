"""``python -m ecs_sandbox``: run the sandbox until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .environment import Sandbox
from .realism import add_profile_arguments, profile_options


def _write_state(sandbox: Sandbox, path: Path) -> None:
    state = {
        "aws_endpoint_url": sandbox.aws_endpoint_url,
        "registry": sandbox.registry_host,
        "listeners": sandbox.load_balancer.urls(),
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
    temporary.replace(path)  # readers never see half a file


def run_sandbox(args: Sequence[str] | None = None) -> int:
    """Start the sandbox, keep ``<state_dir>/sandbox.json`` current, stop cleanly on a signal; return 0."""
    parser = argparse.ArgumentParser(prog="python -m ecs_sandbox", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".sandbox/state"))
    parser.add_argument("--moto-port", type=int, default=0)
    parser.add_argument("--registry-port", type=int, default=5000)
    parser.add_argument("--tick-seconds", type=float, default=None, help="default: the profile's")
    add_profile_arguments(parser)
    options = parser.parse_args(args)
    sandbox = Sandbox.start(
        options.state_dir,
        moto_port=options.moto_port,
        registry_port=options.registry_port,
        tick_seconds=options.tick_seconds,
        **profile_options(options),
    )
    done = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    state_file = options.state_dir / "sandbox.json"
    print(f"sandbox: AWS at {sandbox.aws_endpoint_url}, registry at {sandbox.registry_host}", flush=True)
    try:
        while not done.is_set():
            _write_state(sandbox, state_file)
            done.wait(0.5)
    finally:
        sandbox.stop()
        state_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_sandbox())
