"""The agenda: when each deployment's current stage runs next, kept in Redis instead of the broker.

A stage that waits on AWS does not retry itself through the broker (a Celery ETA message sits
unacknowledged in one worker's memory until it is due, and when that host dies it comes back only
after Redis's visibility timeout, two hours by default). It writes its Celery signature and the time
it is due into the agenda and acknowledges its message. Every worker host runs a dispatcher
(``worker.dispatcher``) that publishes the stages that are due.

A running stage holds a *lease*: its agenda entry is due again ``lease`` seconds from now, and a
keeper thread in the running process pushes that moment on while the stage runs. When a host dies,
its leases lapse and another host's dispatcher publishes those stages again, within one lease.

Each publication by a dispatcher carries a new *token*. A stage run that brings a token other than
the entry's, or brings none once a dispatcher has re-published it, or belongs to a stage earlier
than the deployment's current one, is a stale copy (Redis redelivering a dead host's message hours
later, a second publication of a chain): it is dropped without touching anything.

Keys (under ``deploy-agent:agenda``)::

    agenda                    sorted set: Celery task id -> when it is due (ms, Redis's clock)
    agenda:task:<task id>     hash: sig (JSON signature), token, mode, dep (deployment id), woken
    agenda:dep:<deployment>   hash: task (its current stage's task id), index (that stage's place)
    agenda:stopped:<deployment>  list: the service's tasks ECS's events said stopped meanwhile (JSON)

An entry task (``deploy_agent.deploy``/``rollback``) is leased the same way from its first moment
(``lease_entry``), so a host that dies while it validates or publishes the chain loses nothing
either. A message on the broker's queue needs no lease (Redis keeps it); only a run does.

Modes: ``running`` (leased), ``waiting`` (due at its time), ``dispatched`` (published, not started
yet: leased too, so a dispatcher that dies before publishing loses nothing; published again with
the same token, each lease twice the one before, so a copy waiting behind a long queue still runs
and only copies of it come up stale), ``handover`` (done, the
chain publishes the next stage; leased until Celery has sent that stage's message, then dropped:
``handed_over``, so a kill in between loses nothing and a long queue does not make it run twice).
Every script reads the time from Redis (``TIME``): hosts' clocks never meet. A record's week of
expiry is set when it is made (every script that makes one sets it), not at each later write.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import redis

from deploy_agent.adapters.redis_store import PREFIX
from deploy_agent.core.watch import UPDATING

log = logging.getLogger("deploy_agent.agenda")

AGENDA = f"{PREFIX}agenda"
TASK = f"{AGENDA}:task:"
DEP = f"{AGENDA}:dep:"
#: records outlive any deployment; a finished deployment's marker fences copies redelivered late
RECORD_TTL_SECONDS = 7 * 24 * 3600
#: the stage index a finished deployment records: every stage of it is earlier, hence stale
FINISHED_INDEX = 1000
#: the tasks ECS's events said stopped while a deployment held its service (the result's diagnostics
#: read them there instead of ListTasks and DescribeTasks), newest first, this many kept
STOPPED = f"{AGENDA}:stopped:"
STOPPED_KEPT = 50
#: a book outlives its deployment's end by a day at most (finalize reads it at the end)
STOPPED_TTL_SECONDS = 24 * 3600

#: what a wake did: made the waiting stage due now, marked the running stage (its next wait is
#: zero), or left a stage that waits only for service-level news alone (the news was a task's)
Wake = Literal["woken", "running", "ignored"]


@dataclass(frozen=True)
class WakeRequest:
    """One piece of news for ``Agenda.wake_holders``: the arguments of ``Agenda.wake_holder``."""

    lock_key: str
    about_tasks: bool = False
    own: tuple[str, str, str] | None = None
    deployment: str = ""
    stopped_task: str = ""


@dataclass(frozen=True)
class News:
    """ECS's news about a service, for the deployment holding it. ``about_tasks``: tasks' alone;
    ``started``: that the ECS deployment so named started, no news to the stage whose UpdateService
    started it; ``deployment``: the ECS deployment it is about, no news to a wait that already knows
    its verdict (``Agenda.wait(known=...)``); ``stopped_task``: the service's task that stopped
    (JSON), for the holder's stopped-task book."""

    region: str
    cluster: str
    service: str
    about_tasks: bool = False
    started: str = ""
    deployment: str = ""
    stopped_task: str = ""


class WakeHolders(Protocol):
    """Wakes the deployments holding the services a batch of news is about, in one round trip: what
    each wake did, None when no deployment holds the service (``Agenda.wake_holders``)."""

    def __call__(self, news: Sequence[News]) -> list[Wake | None]: ...


_NOW = "local t = redis.call('time') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

#: KEYS: agenda, task record, dep record, step mutex. ARGV: task id, deployment, index, token, sig,
#: lease ms, ttl, task prefix, mutex owner. Returns 1 (begun, mutex held), 0 (stale), 2 (another
#: copy steps the deployment right now). A stage that follows another takes over its wake: news
#: that came while the previous stage ran or handed over cuts the new stage's first wait to zero.
_BEGIN = (
    _NOW
    + """
local index = tonumber(ARGV[3])
local dep = redis.call('hmget', KEYS[3], 'index', 'task')
local current, previous = dep[1], dep[2]
if current and tonumber(current) > index then return 0 end
local record = redis.call('hmget', KEYS[2], 'token', 'mode')
local token = record[1]
if (token or '') ~= ARGV[4] then return 0 end
if token and token ~= '' and record[2] ~= 'dispatched' then return 0 end
if ARGV[9] ~= '' and not redis.call('set', KEYS[4], ARGV[9], 'NX', 'PX', ARGV[6]) then return 2 end
local carried = false
if previous ~= ARGV[1] then
  if previous and previous ~= '' then
    carried = redis.call('hget', ARGV[8] .. previous, 'woken') == '1'
    redis.call('zrem', KEYS[1], previous)
    redis.call('del', ARGV[8] .. previous)
  end
  redis.call('hset', KEYS[3], 'task', ARGV[1], 'index', index)
  if not current then redis.call('expire', KEYS[3], ARGV[7]) end
end
redis.call('hset', KEYS[2], 'sig', ARGV[5], 'token', ARGV[4], 'mode', 'running', 'dep', ARGV[2])
if carried then redis.call('hset', KEYS[2], 'woken', '1') end
if not token then redis.call('expire', KEYS[2], ARGV[7]) end
redis.call('zadd', KEYS[1], now + tonumber(ARGV[6]), ARGV[1])
return 1
"""
)

#: KEYS: agenda, task record[, step mutex to release]. ARGV: task id, token, delay ms, sig,
#: deployment, ttl, mode, quiet ('1': a task's news does not wake it), known (an ECS deployment
#: whose news does not wake it)[, mutex owner]. A wait that was woken meanwhile is due at once; a
#: handover keeps the wake for the next stage (``_BEGIN``).
_SCHEDULE = (
    _NOW
    + """
if KEYS[3] and redis.call('get', KEYS[3]) == ARGV[10] then redis.call('del', KEYS[3]) end
local record = redis.call('hmget', KEYS[2], 'token', 'woken')
local token = record[1]
if token and token ~= ARGV[2] then return 0 end
local delay = tonumber(ARGV[3])
if record[2] == '1' and ARGV[7] == 'waiting' then delay = 0 end
local woken = '0'
if record[2] == '1' and ARGV[7] == 'handover' then woken = '1' end
redis.call('hset', KEYS[2], 'sig', ARGV[4], 'token', ARGV[2], 'mode', ARGV[7], 'dep', ARGV[5], 'woken', woken,
  'quiet', ARGV[8], 'known', ARGV[9])
if not token then redis.call('expire', KEYS[2], ARGV[6]) end
redis.call('zadd', KEYS[1], now + delay, ARGV[1])
return 1
"""
)

#: KEYS: agenda. ARGV: lease ms, then task id, token pairs. Pushes on the leases still ours.
_RENEW = (
    _NOW
    + """
local renewed = 0
for i = 2, #ARGV - 1, 2 do
  local key = ARGV[#ARGV] .. ARGV[i]
  local record = redis.call('hmget', key, 'token', 'mode')
  if record[1] == ARGV[i + 1] and record[2] == 'running' then
    redis.call('zadd', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
    renewed = renewed + 1
  end
end
return renewed
"""
)

#: KEYS: agenda, sequence. ARGV: limit, lease ms, task prefix. Returns task id, token, sig, ...
#: A record still ``dispatched`` (published, not begun when its lease lapsed) is most likely still
#: on the broker's queue, behind a long one: it is published again with the *same* token, so
#: whichever copy comes first runs (``_BEGIN`` drops the others), and its lease doubles with each
#: such claim (up to 16 leases). A new token would make the queued copy stale, and behind a queue
#: longer than a lease every copy would be stale before it came up.
_CLAIM = (
    _NOW
    + """
local out = {}
for _, id in ipairs(redis.call('zrangebyscore', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))) do
  local key = ARGV[3] .. id
  local record = redis.call('hmget', key, 'sig', 'mode', 'token', 'claims')
  local sig = record[1]
  if sig then
    local token, claims = record[3], 0
    if record[2] ~= 'dispatched' or not token or token == '' then
      token = 'd' .. redis.call('incr', KEYS[2])
    else
      claims = math.min(tonumber(record[4] or '0') + 1, 4)
    end
    redis.call('hset', key, 'token', token, 'mode', 'dispatched', 'woken', '0', 'claims', claims)
    redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]) * 2 ^ claims, id)
    out[#out + 1] = id
    out[#out + 1] = token
    out[#out + 1] = sig
  else
    redis.call('zrem', KEYS[1], id)
  end
end
return out
"""
)

#: KEYS: agenda, then for each piece of news: the lock of the service it is about, and the cluster's
#: watch fingerprints (or the agenda key: no such check). ARGV: task prefix, dep prefix, stopped-task
#: book prefix, how many a book keeps, its ttl, the mark of an update on its way; then five for each
#: piece of news: '1' when it is tasks' alone, the ECS deployment it is about (or ''), a stopped task
#: (JSON, or ''), the service ('': no own check), the mark of the update that started the deployment
#: it is about.
#: For each: -1 when no deployment holds the lock; else a stopped task goes into the holder's book,
#: and the holder's waiting stage is made due now (1), or its running stage marked woken (0); -2 when
#: the news is nothing to it: the service carries the update's mark or the mark of an update on its
#: way (the stage's own doing), its wait takes no tasks' news, or already knows that deployment's
#: verdict. One round trip for a whole batch of ECS's events.
_WAKE_HOLDERS = (
    _NOW
    + """
local function wake(lock, marks, about, deployment, stopped, service, own)
  local holder = redis.call('get', lock)
  if not holder then return -1 end
  if stopped ~= '' then
    local book = ARGV[3] .. holder
    redis.call('lpush', book, stopped)
    redis.call('ltrim', book, 0, tonumber(ARGV[4]) - 1)
    redis.call('expire', book, ARGV[5])
  end
  if service ~= '' then
    local mark = redis.call('hget', marks, service)
    if mark and (mark == ARGV[6] or string.sub(mark, 1, #own) == own) then return -2 end
  end
  local id = redis.call('hget', ARGV[2] .. holder, 'task')
  if not id then return 0 end
  local key = ARGV[1] .. id
  local record = redis.call('hmget', key, 'mode', 'quiet', 'known')
  if about == '1' and record[2] == '1' then return -2 end
  if deployment ~= '' and record[3] == deployment then return -2 end
  if record[1] == 'waiting' then
    redis.call('zadd', KEYS[1], 'XX', 'LT', now, id)
    return 1
  end
  if record[1] then redis.call('hset', key, 'woken', '1') end
  return 0
end
local out = {}
for i = 1, (#KEYS - 1) / 2 do
  local a = 6 + (i - 1) * 5
  out[i] = wake(KEYS[2 * i], KEYS[2 * i + 1], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
end
return out
"""
)

#: KEYS: agenda, task record, dep record. ARGV: task id, token, finished index, ttl
_FINISH = """
local token = redis.call('hget', KEYS[2], 'token')
if token and token ~= ARGV[2] then return 0 end
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('del', KEYS[2])
redis.call('hset', KEYS[3], 'task', '', 'index', ARGV[3])
redis.call('expire', KEYS[3], ARGV[4])
return 1
"""

#: KEYS: agenda, task record. ARGV: task id, token, sig, lease ms, ttl. A run whose record is gone
#: (it finished, or it retried through the broker) begins again: entries are safe to run twice.
_LEASE_ENTRY = (
    _NOW
    + """
local record = redis.call('hmget', KEYS[2], 'token', 'mode')
local token = record[1]
if token and token ~= ARGV[2] then return 0 end
if token and token ~= '' and record[2] ~= 'dispatched' then return 0 end
redis.call('hset', KEYS[2], 'sig', ARGV[3], 'token', ARGV[2], 'mode', 'running', 'woken', '0')
redis.call('expire', KEYS[2], ARGV[5])
redis.call('zadd', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
return 1
"""
)

#: KEYS: agenda, task record. ARGV: task id, token
_DROP = """
if redis.call('hget', KEYS[2], 'token') ~= ARGV[2] then return 0 end
redis.call('zrem', KEYS[1], ARGV[1])
redis.call('del', KEYS[2])
return 1
"""


_WAKES: dict[int, Wake] = {1: "woken", 0: "running", -2: "ignored"}


class Begun(enum.IntEnum):
    """What ``Agenda.begin`` found."""

    STALE = 0  #: a stale copy: drop it
    RUN = 1  #: leased, and the step mutex is ours
    BUSY = 2  #: another copy steps the deployment right now: look again soon


@dataclass(frozen=True)
class Mutex:
    """A deployment's step mutex (``StepMutex``'s key) and this run's owner value."""

    key: str
    owner: str


@dataclass(frozen=True)
class Due:
    """A stage a dispatcher claimed: publish ``signature`` with ``token``."""

    task_id: str
    token: str
    signature: str


class Agenda:
    """The Redis agenda of stages: begin, wait, hand over, finish; claim what is due; wake."""

    def __init__(self, client: redis.Redis, lease_seconds: float) -> None:
        self._r = client
        self.lease_ms = max(100, int(lease_seconds * 1000))
        self._begin = client.register_script(_BEGIN)
        self._schedule = client.register_script(_SCHEDULE)
        self._renew = client.register_script(_RENEW)
        self._claim = client.register_script(_CLAIM)
        self._wake_holders = client.register_script(_WAKE_HOLDERS)
        self._finish = client.register_script(_FINISH)
        self._drop = client.register_script(_DROP)
        self._lease_entry = client.register_script(_LEASE_ENTRY)

    def begin(
        self,
        task_id: str,
        deployment_id: str,
        index: int,
        token: str,
        signature: str,
        mutex: Mutex | None = None,
    ) -> Begun:
        """Lease a stage run, taking ``mutex`` (the deployment's step mutex) in the same step."""
        mutex = mutex or Mutex(f"{AGENDA}:no-mutex", "")
        keys = [AGENDA, TASK + task_id, DEP + deployment_id, mutex.key]
        args: list[str | int] = [task_id, deployment_id, index, token, signature, self.lease_ms]
        args += [RECORD_TTL_SECONDS, TASK, mutex.owner]
        return Begun(int(cast(int, self._begin(keys=keys, args=args))))

    def wait(
        self,
        task_id: str,
        deployment_id: str,
        token: str,
        delay: float,
        signature: str,
        mutex: Mutex | None = None,
        *,
        quiet_tasks: bool = False,
        known: str = "",
    ) -> bool:
        """Make the stage due after ``delay`` seconds (at once if woken meanwhile); release ``mutex``.

        ``quiet_tasks``: news about tasks alone (ECS's task state changes) does not wake it; what
        it waits for shows in the service's deployments, whose own news does. ``known``: an ECS
        deployment whose verdict the stage has; news of it (its end) does not wake it either.
        """
        quiet = "1" if quiet_tasks else "0"
        delay_ms = int(delay * 1000)
        return self._put(task_id, deployment_id, token, delay_ms, signature, "waiting", mutex, quiet, known)

    def hand_over(
        self, task_id: str, deployment_id: str, token: str, signature: str, mutex: Mutex | None = None
    ) -> bool:
        """Lease a finished stage until the next stage begins (a kill in between re-runs it, a no-op)."""
        return self._put(task_id, deployment_id, token, self.lease_ms, signature, "handover", mutex, "0")

    def _put(
        self,
        task_id: str,
        dep: str,
        token: str,
        delay_ms: int,
        sig: str,
        mode: str,
        mutex: Mutex | None,
        quiet: str,
        known: str = "",
    ) -> bool:
        """Write the task's record and due time, releasing ``mutex`` when it is still ours, in one step."""
        keys = [AGENDA, TASK + task_id]
        args: list[str | int] = [task_id, token, delay_ms, sig, dep, RECORD_TTL_SECONDS, mode, quiet, known]
        if mutex is not None:
            keys.append(mutex.key)
            args.append(mutex.owner)
        return bool(self._schedule(keys=keys, args=args))

    def finish(self, task_id: str, deployment_id: str, token: str) -> bool:
        """Take a finished deployment off the agenda; its marker fences stale copies out."""
        keys = [AGENDA, TASK + task_id, DEP + deployment_id]
        return bool(self._finish(keys=keys, args=[task_id, token, FINISHED_INDEX, RECORD_TTL_SECONDS]))

    def lease_entry(self, task_id: str, token: str, signature: str) -> bool:
        """Lease an entry task's run; False for a stale copy (the agenda published a newer one)."""
        args: list[str | int] = [task_id, token, signature, self.lease_ms, RECORD_TTL_SECONDS]
        return bool(self._lease_entry(keys=[AGENDA, TASK + task_id], args=args))

    def drop(self, task_id: str, token: str) -> bool:
        """Take a run that needs no more turns (an entry that handed over) off the agenda."""
        return bool(self._drop(keys=[AGENDA, TASK + task_id], args=[task_id, token]))

    def renew(self, held: list[tuple[str, str]]) -> int:
        """Push on the leases of ``held`` (task id, token) still ours; return how many were."""
        if not held:
            return 0
        flat = [part for pair in held for part in pair]
        return int(cast(int, self._renew(keys=[AGENDA], args=[self.lease_ms, *flat, TASK])))

    def claim_due(self, limit: int = 100) -> list[Due]:
        """Claim up to ``limit`` due stages, each with a new token and a lease on the publication."""
        raw = cast(list[Any], self._claim(keys=[AGENDA, f"{AGENDA}:seq"], args=[limit, self.lease_ms, TASK]))
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in raw]
        return [Due(values[i], values[i + 1], values[i + 2]) for i in range(0, len(values), 3)]

    def wake_holder(
        self,
        lock_key: str,
        about_tasks: bool = False,
        own: tuple[str, str, str] | None = None,
        deployment: str = "",
        stopped_task: str = "",
    ) -> Wake | None:
        """Wake the deployment that holds the service lock at ``lock_key`` (``ServiceLock.key``);
        return what the wake did, None when no deployment holds the lock. ``about_tasks``: the news
        is tasks' alone, which a stage waiting with ``quiet_tasks`` does not need. ``own``: (the
        cluster's watch fingerprints key, the service, a mark): the news wakes nothing when the
        service's fingerprint starts with the mark, or reads ``UPDATING`` (its stage's own
        UpdateService made it; its stage may still be running). ``deployment``: the ECS deployment
        the news is about; a wait that ``known`` names it sleeps on. ``stopped_task``: a task of the
        service stopped (JSON): it goes into the holder's stopped-task book, in the same step."""
        return self.wake_holders([WakeRequest(lock_key, about_tasks, own, deployment, stopped_task)])[0]

    def wake_holders(self, requests: Sequence[WakeRequest]) -> list[Wake | None]:
        """``wake_holder`` for each request, in one round trip; what each wake did, in order."""
        if not requests:
            return []
        keys = [AGENDA]
        args: list[str | int] = [TASK, DEP, STOPPED, STOPPED_KEPT, STOPPED_TTL_SECONDS, UPDATING]
        for request in requests:
            fingerprints, service, mark = request.own or (AGENDA, "", "")
            keys += [request.lock_key, fingerprints]
            args += [
                "1" if request.about_tasks else "0",
                request.deployment,
                request.stopped_task,
                service,
                mark,
            ]
        woken = cast(list[int], self._wake_holders(keys=keys, args=args))
        return [_WAKES.get(int(code)) for code in woken]

    def stopped_tasks(self, deployment_id: str) -> list[dict[str, Any]]:
        """Return the tasks ECS's events said stopped while ``deployment_id`` held its service, newest
        first, in DescribeTasks' shape (what ``core.ecs_events.stopped_task`` keeps); none without events."""
        raw = cast(list[bytes], self._r.lrange(STOPPED + deployment_id, 0, -1))
        return [json.loads(item) for item in raw]

    def has_begun(self, deployment_id: str) -> bool:
        """Return whether a stage of ``deployment_id`` ever began (its record outlives its end a week)."""
        return bool(self._r.exists(DEP + deployment_id))

    def pending(self) -> int:
        """Return how many stages the agenda holds (waiting, running, dispatched or handed over)."""
        return int(cast(int, self._r.zcard(AGENDA)))


class LeaseKeeper:
    """A thread per process that pushes on the leases of the stage runs it holds, every third of a lease."""

    def __init__(self, agenda: Agenda, extend: Callable[[list[str]], None] | None = None) -> None:
        self._agenda = agenda
        self._extend = extend
        self._held: dict[str, tuple[str, str]] = {}
        self._mutexes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, task_id: str, token: str, mutex_key: str | None = None) -> Iterator[None]:
        """Keep the lease of ``task_id`` (and the TTL of ``mutex_key``) alive for the block."""
        ref = uuid.uuid4().hex
        with self._lock:
            self._held[ref] = (task_id, token)
            if mutex_key is not None:
                self._mutexes[ref] = mutex_key
            self._start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(ref, None)
                self._mutexes.pop(ref, None)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="deploy-agent-leases", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        period = self._agenda.lease_ms / 3000.0
        while True:
            threading.Event().wait(period)
            with self._lock:
                held, mutexes = list(self._held.values()), list(self._mutexes.values())
            try:
                self._agenda.renew(held)
                if mutexes and self._extend is not None:
                    self._extend(mutexes)
            except redis.RedisError:
                log.warning("could not renew %d stage lease(s)", len(held), exc_info=True)
