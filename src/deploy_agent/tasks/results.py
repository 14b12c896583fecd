"""The deployment's result in Celery's result backend, where publishers' ``AsyncResult.get()`` reads it."""

from __future__ import annotations

from typing import Any

from celery import states
from celery.backends.redis import RedisBackend

#: KEYS: the result's key. ARGV: the encoded result, seconds to keep it ('' for ever). What Celery's
#: Redis backend does for a ready result (SETEX, then PUBLISH to the subscribers waiting on the key).
_STORE_AND_PUBLISH = """
if ARGV[2] == '' then
  redis.call('set', KEYS[1], ARGV[1])
else
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return redis.call('publish', KEYS[1], ARGV[1])
"""


def store_final_result(backend: Any, task_id: str, result: Any) -> None:
    """Store ``result`` as the SUCCESS of ``task_id`` and tell the publishers waiting on it.

    One Redis command where ``backend.store_result`` sends five (a GET so that a stored SUCCESS is
    never overwritten, then SETEX and PUBLISH in a MULTI): a deployment's result is written only by
    its finalize, and a finalize that runs again stores the same result. The message is Celery's own
    (its ``_get_result_meta``, encoded with the backend's serializer), so any client reads it as if
    Celery had stored it. A backend other than Redis (or Sentinel) gets ``store_result``.
    """
    if not isinstance(backend, RedisBackend):
        backend.store_result(task_id, result, states.SUCCESS)
        return
    meta = backend._get_result_meta(result, states.SUCCESS, None, None)
    meta["task_id"] = task_id
    value = backend.encode(meta)
    expires = "" if not backend.expires else str(int(backend.expires))
    key = backend.get_key_for_task(task_id)
    backend.ensure(lambda: backend.client.eval(_STORE_AND_PUBLISH, 1, key, value, expires), ())
