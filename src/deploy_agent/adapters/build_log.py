"""A build's log stream as whole lines (a RUN step may print half a line per chunk)."""

from __future__ import annotations

from collections.abc import Callable


class LineSplitter:
    """Turns stream fragments into whole lines (a RUN step may print half a line per chunk)."""

    def __init__(self, sink: Callable[[str], None] | None) -> None:
        self._sink = sink
        self._pending = ""

    def feed(self, text: str) -> None:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._emit(line)

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""

    def _emit(self, line: str) -> None:
        line = line.rstrip("\r")
        if line.strip() and self._sink is not None:
            self._sink(line)
