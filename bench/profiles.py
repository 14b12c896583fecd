"""The sandbox profile a benchmark runs on: the sandbox's own ``--profile`` and ``--time-scale``.

Benchmarks run on the realism profile by default (real ECS timelines, eventual consistency, target
health as each group configures it, AWS's rules), at its time scale 0.02: ten AWS minutes in 12 s.
Explicit knobs a script passes (``task_start_delay_seconds``) still win over the profile.
"""

from __future__ import annotations

from ecs_sandbox.realism import add_profile_arguments, describe_profile
from ecs_sandbox.realism import profile_options as profile_knobs

__all__ = ["add_profile_arguments", "describe_profile", "profile_knobs"]
