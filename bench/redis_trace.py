"""Where a run's Redis commands go: a MONITOR of the benchmark's private Redis, classified.

Redis's ``commandstats`` counts every command it executes, the ones a Lua script runs included, and
cannot tell a client's round trip from a script's inner call. ``MONITOR`` can: a script's inner
commands carry ``[db lua]`` where a client's carry its address. ``RedisTrace`` reads the feed in a
thread while a run goes and counts, per purpose (broker, results, agenda, state, ...):

- *sent*: commands clients sent (round trips; a pipeline of n commands is n);
- *in scripts*: commands Lua scripts ran (attributed to the script that ran them).

Scripts are named by the SHA1 of their text, looked up among the module-level strings of the
``deploy_agent`` package (``EVAL`` sends the text itself; it is hashed the same way). The benchmark's
own result polling (``MGET celery-task-meta-*``) is counted apart.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import deploy_agent

#: key prefixes (after ``deploy-agent:``) -> purpose; the longest match wins
_STATE_PURPOSES = {
    "agenda": "agenda",
    "state": "state",
    "events": "events",
    "lock": "service lock",
    "quota": "quota tokens",
    "watch": "cluster watcher",
    "result": "results",
}


def _script_names() -> dict[str, str]:
    """Map the SHA1 of every Lua script text in ``deploy_agent`` to ``module.NAME``."""
    names: dict[str, str] = {}
    for info in pkgutil.walk_packages(deploy_agent.__path__, "deploy_agent."):
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: S112 - a module that cannot be imported here has no script we run
            continue
        found: list[tuple[str, object]] = list(vars(module).items())
        for cls in [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == info.name]:
            found += [(f"{cls.__name__}.{k}", v) for k, v in vars(cls).items()]
        for name, value in found:
            if isinstance(value, str) and "redis.call" in value:
                short = info.name.rsplit(".", 1)[-1]
                digest = hashlib.sha1(value.encode()).hexdigest()  # noqa: S324 - Redis's script id
                names[digest] = f"{short}.{name.lstrip('_')}"
    return names


def _purpose(db: int, key: str, broker_db: int, result_db: int) -> str:
    if db == broker_db:
        return "broker"
    if db == result_db:
        return "results"
    rest = key.removeprefix("deploy-agent:")
    head = rest.split(":", 1)[0]
    return _STATE_PURPOSES.get(head, head or "(no key)")


@dataclass
class Trace:
    """Counts by purpose: commands sent, and commands run inside scripts (by script)."""

    sent: Counter[str] = field(default_factory=Counter)
    sent_by_command: Counter[str] = field(default_factory=Counter)
    sent_by_purpose_command: Counter[tuple[str, str]] = field(default_factory=Counter)
    in_scripts: Counter[str] = field(default_factory=Counter)
    polling: int = 0

    def total_sent(self) -> int:
        return sum(self.sent.values())

    def total_in_scripts(self) -> int:
        return sum(self.in_scripts.values())


class RedisTrace:
    """``redis-cli monitor`` into a file from ``__enter__`` to ``__exit__``; then ``trace`` holds the counts.

    The feed is written by its own process and read afterwards, so tracing takes no CPU from the
    benchmark's process (the sandbox's moto server and scheduler run there).
    """

    def __init__(self, port: int, path: Path, broker_db: int, result_db: int) -> None:
        self._port, self._path = port, path
        self._broker_db, self._result_db = broker_db, result_db
        self.trace = Trace()
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisTrace:
        self._out = self._path.open("wb")
        self._process = subprocess.Popen(
            ["redis-cli", "-p", str(self._port), "monitor"], stdout=self._out, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while self._path.stat().st_size == 0 and time.monotonic() < deadline:  # its "OK"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        time.sleep(0.2)  # the last commands' lines
        self._process.terminate()
        self._process.wait(timeout=10)
        self._out.close()
        self.trace = read_monitor(self._path, self._broker_db, self._result_db)


_LINE = re.compile(r"^[0-9.]+ \[(\d+) ([^\]]+)\] (.*)$")
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


def read_monitor(path: Path, broker_db: int, result_db: int) -> Trace:
    """Count a MONITOR feed: commands sent by purpose and by command, commands run inside scripts."""
    scripts = _script_names()
    trace = Trace()
    last_script = "?"
    pending: dict[str, int] = {}  # a client's MULTI, counted with the first command after it
    for raw in path.read_bytes().decode(errors="replace").splitlines():
        match = _LINE.match(raw)
        if match is None:
            continue
        db, client, rest = int(match[1]), match[2], match[3]
        args = [a.encode().decode("unicode_escape", errors="replace") for a in _ARG.findall(rest)]
        if not args:
            continue
        name = args[0].upper()
        if client == "lua":
            trace.in_scripts[last_script] += 1
            continue
        if name == "MULTI":
            pending[client] = pending.get(client, 0) + 1
            continue
        if name in ("EVALSHA", "EVAL"):
            digest = args[1] if name == "EVALSHA" else hashlib.sha1(args[1].encode()).hexdigest()  # noqa: S324
            last_script = scripts.get(digest, f"script {digest[:8]}")
            key = args[3] if len(args) > 3 and args[2] != "0" else ""
            label = f"{name} {last_script}"
        elif name == "MGET" and len(args) > 1 and args[1].startswith("celery-task-meta-"):
            trace.polling += 1
            continue
        else:
            key, label = (args[1] if len(args) > 1 else ""), name
        purpose = _purpose(db, key, broker_db, result_db)
        extra = pending.pop(client, 0)
        trace.sent[purpose] += 1 + extra
        trace.sent_by_command[label] += 1
        trace.sent_by_purpose_command[purpose, label] += 1
        if extra:
            trace.sent_by_command["MULTI"] += extra
            trace.sent_by_purpose_command[purpose, "MULTI"] += extra
    return trace


def format_trace(trace: Trace, count: int) -> list[str]:
    """Lines: per deployment, commands sent by purpose and the commands scripts ran, by script."""
    sent = ", ".join(f"{k} {n / count:.1f}" for k, n in trace.sent.most_common())
    inner = ", ".join(f"{k} {n / count:.1f}" for k, n in trace.in_scripts.most_common(8))
    top = ", ".join(f"{k} {n / count:.1f}" for k, n in trace.sent_by_command.most_common(12))
    detail = []
    for purpose, _ in trace.sent.most_common(6):
        mine = Counter({c: n for (p, c), n in trace.sent_by_purpose_command.items() if p == purpose})
        detail.append(f"    {purpose}: " + ", ".join(f"{c} {n / count:.1f}" for c, n in mine.most_common(8)))
    return [
        f"  sent {trace.total_sent() / count:.0f}/deployment by purpose: {sent}",
        *detail,
        f"  sent by command: {top}",
        f"  run inside scripts {trace.total_in_scripts() / count:.0f}/deployment: {inner}",
        f"  this script's result polling (left out): {trace.polling} MGET",
    ]
