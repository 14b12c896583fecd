"""The dispatcher publishes a saved signature as the message that came, whatever kombu's JSON carried."""

from __future__ import annotations

from typing import Any, cast

from celery import Celery, Task

from deploy_agent.adapters.agenda import Due
from deploy_agent.tasks.stages import stage_signature
from deploy_agent.worker.dispatcher import publish_due


class FakeRequest:
    def __init__(self, ignore_result: bool) -> None:
        self.ignore_result = ignore_result


class FakeTask:
    """What of a bound task ``stage_signature`` reads: its request and the signature from it."""

    def __init__(self, kwargs: dict[str, Any], ignore_result: bool = False) -> None:
        self._kwargs = kwargs
        self.request = FakeRequest(ignore_result)

    def signature_from_request(self) -> dict[str, Any]:
        return {"task": "deploy_agent.deploy", "args": [], "kwargs": self._kwargs, "options": {"retries": 2}}


class RecordingApp:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def signature(self, sig: dict[str, Any]) -> Any:
        sent = self.sent

        class Sig:
            def apply_async(self) -> None:
                sent.append(sig)

        return Sig()


def republished(kwargs: dict[str, Any], claim: str = "t2", ignore_result: bool = False) -> dict[str, Any]:
    saved = stage_signature(cast(Task, FakeTask(kwargs, ignore_result)))
    app = RecordingApp()
    publish_due(cast(Celery, app), Due("task-1", claim, saved))
    return app.sent[0]


class TestPublishDue:
    def test_a_bytes_request_is_published_as_bytes(self) -> None:
        """Kombu's JSON carries bytes (base64-typed); the agenda's copy must too, not crash on them."""
        sent = republished({"request": b"\x8a@Uy\x12>"})
        assert sent["kwargs"]["request"] == b"\x8a@Uy\x12>"

    def test_the_claim_token_replaces_the_old_one(self) -> None:
        """The copy the dispatcher publishes carries its claim's token, never the run's old one."""
        sent = republished({"request": {"a": 1}, "token": "old"}, claim="new")
        assert sent["kwargs"] == {"request": {"a": 1}, "token": "new"}

    def test_transient_options_are_not_saved(self) -> None:
        """A retry count, eta or countdown belongs to the run that saved it, not to the next copy."""
        sent = republished({"request": {}})
        assert "retries" not in sent["options"]

    def test_a_stage_whose_result_nobody_reads_keeps_it_unstored(self) -> None:
        """``ignore_result`` is not among Celery's execution options; the agenda's copy keeps it."""
        assert republished({"request": {}}, ignore_result=True)["options"]["ignore_result"] is True
        assert "ignore_result" not in republished({"request": {}})["options"]
