"""A throttled or failing AWS call slows a deployment down; it never fails or rolls back a good one.

botocore already retries each call (``aws_max_attempts``, standard/adaptive mode). When a call still
fails with a transient error (``core.errors.is_transient``: throttling, 5xx, a dropped connection on
a read or on a call that is safe to re-send), the step is tried again later, with a growing,
jittered back-off, until the deployment's deadline. ECS's API quotas are per account and Region
and shared with every other tool in the account
(docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html), so a storm is not ours
to end: waiting it out is the only safe answer.

The attempts are counted on the state (``aws_retries``: failures in a row, ``aws_retries_total``:
all of them), so a redelivered stage keeps its place in the back-off.
"""

from __future__ import annotations

import logging
import random

from deploy_agent.core.errors import DeployError, is_transient
from deploy_agent.core.polling import plan_retry_delay
from deploy_agent.core.state import PipelineState
from deploy_agent.strategies.base import Progress
from deploy_agent.tasks.runtime import Runtime

log = logging.getLogger("deploy_agent.pipeline")


def wait_out_transient(rt: Runtime, state: PipelineState, stage: str, error: DeployError) -> Progress | None:
    """Return a wait when ``error`` is transient and the deadline allows one, else None (fail).

    (The rollback stage retries every error until its own timeout; see ``tasks.stages``.)
    """
    if not is_transient(error):
        return None
    now = rt.now()
    if state.past_deadline(now):
        return None  # the failure stands; the deadline, not the error, is what ended it
    state.aws_retries += 1
    state.aws_retries_total += 1
    wait = plan_retry_delay(
        state.aws_retries,
        rt.settings.aws_retry_base_seconds,
        rt.settings.aws_retry_cap_seconds,
        random.random(),  # noqa: S311  (jitter, not secrets)
    )
    wait = max(0.0, min(wait, (state.deadline - now).total_seconds()))
    log.warning(
        "transient AWS failure in %s (attempt %d), retrying in %.2f s: %s",
        stage,
        state.aws_retries,
        wait,
        error.message,
        extra={"deployment_id": state.deployment_id, "stage": stage},
    )
    return Progress.wait(wait)


def clear_streak(state: PipelineState) -> None:
    """Note that a step ran without a transient failure: the next one starts the back-off afresh."""
    state.aws_retries = 0
