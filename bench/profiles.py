"""The sandbox profile a benchmark runs on: ``--profile`` and ``--time-scale``, the same for every script.

Benchmarks run on the realism profile by default (real ECS timelines, eventual consistency, target
health as each group configures it, AWS's rules), at ``time_scale`` 0.02: ten AWS minutes in 12 s.
Explicit knobs a script passes (``task_start_delay_seconds``) still win over the profile.
"""

from __future__ import annotations

import argparse
from typing import Any

from deploy_agent.sandbox.realism import PROFILES

DEFAULT_TIME_SCALE = 0.02


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--profile`` and ``--time-scale`` to a benchmark's arguments."""
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), default="realistic", help="sandbox profile (default realistic)"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=DEFAULT_TIME_SCALE,
        help=f"sandbox seconds per AWS second (default {DEFAULT_TIME_SCALE:g})",
    )


def profile_knobs(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``Sandbox.start`` keywords for the chosen profile."""
    return {"profile": PROFILES[args.profile], "time_scale": args.time_scale}


def describe_profile(args: argparse.Namespace) -> str:
    """Return one line naming the profile, for the benchmark's header."""
    return f"sandbox profile: {args.profile}, time scale {args.time_scale:g} (AWS seconds x scale)"
