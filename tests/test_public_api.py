"""What the package makes public is listed, and the CLI and Celery configuration keep their promises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kombu.utils.scheduling import cycle_by_name

import deploy_agent
from deploy_agent.cli import main
from deploy_agent.settings import Settings
from deploy_agent.worker.app import celery_config, create_app

ROOT = Path(__file__).resolve().parents[1]


def test_exported_members() -> None:
    """The top-level names are exactly the documented public surface."""
    assert sorted(deploy_agent.__all__) == [
        "DeployError",
        "DeployToECSTask",
        "DeploymentResult",
        "Outcome",
        "__version__",
    ]


def test_schema_command_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`deploy-agent schema` prints the same JSON Schema that is committed under schemas/."""
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((ROOT / "schemas" / "deploy_to_ecs_task.v1.json").read_text())


class TestCeleryConfig:
    def test_json_only_late_acks_prefetch_one(self) -> None:
        """Messages are JSON only; stages are acked late, requeued when a worker dies, one at a time."""
        conf = celery_config(Settings())
        assert conf["accept_content"] == ["json"]
        assert conf["task_serializer"] == conf["result_serializer"] == "json"
        assert conf["task_acks_late"] is True
        assert conf["task_reject_on_worker_lost"] is True
        assert conf["worker_prefetch_multiplier"] == 1
        assert conf["task_default_queue"] == "deploy"

    def test_work_for_started_deployments_goes_to_the_stage_queue_taken_first(self) -> None:
        """Next stages and notifications go to ``<queue>.stages``, new deployments to the queue; a worker
        takes its queues in the order it names them (``-Q stages,queue``), not in turns."""
        settings = Settings(queue="builds")
        app = create_app(settings, set_as_current=False)

        def queue_of(task: str) -> str:
            return str(app.amqp.router.route({}, task)["queue"].name)

        assert settings.stage_queue == "builds.stages"
        assert (
            queue_of("deploy_agent.stage.deploy")
            == queue_of("deploy_agent.stage.finalize")
            == "builds.stages"
        )
        assert queue_of("deploy_agent.notify") == "builds.stages"
        for entry in (
            "deploy_agent.deploy",
            "deploy_agent.rollback",
            "deploy_agent.approve",
            "deploy_agent.plan",
        ):
            assert queue_of(entry) == "builds"
        strategy = celery_config(settings)["broker_transport_options"]["queue_order_strategy"]
        # kombu keeps a channel's queues in a set: whatever order they come in, the stages go first
        for queues in (["builds", "builds.stages"], ["builds.stages", "builds"]):
            order = cycle_by_name(strategy)()
            order.update(queues)
            assert order.consume(2) == ["builds.stages", "builds"]
            order.rotate("builds.stages")  # a message came from it: the order stays
            assert order.consume(2) == ["builds.stages", "builds"]

    def test_visibility_timeout_exceeds_task_time_limit_everywhere(self) -> None:
        """The Redis visibility timeout is above the task limit, for broker and result backend alike."""
        conf = celery_config(Settings())
        vt = conf["broker_transport_options"]["visibility_timeout"]
        assert (
            vt == conf["result_backend_transport_options"]["visibility_timeout"] == conf["visibility_timeout"]
        )
        assert vt > conf["task_time_limit"]

    def test_a_visibility_timeout_below_the_time_limit_is_refused(self) -> None:
        """A configuration that would run stages twice is an error, not a silent duplicate."""
        with pytest.raises(ValueError, match="visibility_timeout"):
            celery_config(Settings(visibility_timeout_seconds=60, task_time_limit_seconds=120))


def test_readme_documents_every_setting() -> None:
    """Each worker setting appears in the README's configuration table."""
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"DEPLOY_AGENT_{name.upper()}" in readme, name
