"""A socket whose reads all end at one deadline: a server trickling bytes is cut when it passes."""

from __future__ import annotations

import io
import socket
import time


class DeadlineSocket:
    """What ``HTTPResponse`` reads from: each read may wait only until the request's deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(DeadlineReader(self._sock, self._deadline))


class DeadlineReader(io.RawIOBase):
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request's deadline passed")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)
