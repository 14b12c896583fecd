"""The dispatcher: a thread in every worker host's main process that publishes the agenda's due stages.

Every host runs one, so the fleet keeps publishing while any host lives: a stage that waited, or
whose host died (its lease lapsed), is published by whichever dispatcher claims it first. Claiming
is one Redis script, atomic across hosts, so a due stage is published once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from celery import Celery
from kombu.utils import json as kombu_json

from deploy_agent.adapters.agenda import Agenda, Due

log = logging.getLogger("deploy_agent.dispatcher")

#: most stages claimed in one look; more due ones are taken at the next look, right away
BATCH = 200


def publish_due(app: Celery, due: Due) -> None:
    """Publish a claimed stage: its saved signature, with the claim's token as an argument."""
    signature = kombu_json.loads(due.signature)
    signature["kwargs"] = {**(signature.get("kwargs") or {}), "token": due.token}
    app.signature(signature).apply_async()


class Dispatcher:
    """Publishes the due stages every ``interval`` seconds until stopped, and at once when poked."""

    def __init__(
        self,
        agenda: Agenda,
        publish: Callable[[Due], None],
        interval: float,
    ) -> None:
        self._agenda = agenda
        self._publish = publish
        self._interval = interval
        self._stop = threading.Event()
        self._poked = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Dispatcher:
        self._thread = threading.Thread(target=self._loop, name="deploy-agent-dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._poked.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def poke(self) -> None:
        """Look now, not at the next interval: this host just made a stage due (a wake)."""
        self._poked.set()

    def dispatch_once(self) -> int:
        """Publish every stage due now; return how many were published."""
        published = 0
        while True:
            claimed = self._agenda.claim_due(BATCH)
            for due in claimed:
                try:
                    self._publish(due)
                    published += 1
                except Exception:  # its lease brings it back to the next look
                    log.exception("could not publish the due task %s", due.task_id)
            if len(claimed) < BATCH:
                return published

    def _loop(self) -> None:
        # A wake made on this host (the cluster watcher's, the event consumer's) pokes the loop: the
        # interval's wait was, on average, half of it added to every verdict ECS announced.
        while True:
            self._poked.wait(self._interval)
            self._poked.clear()
            if self._stop.is_set():
                return
            try:
                self.dispatch_once()
            except redis.RedisError:
                log.warning("the agenda is unreachable; retrying", exc_info=True)
