"""tests/support.py: the one ``wait_until`` loop and the one ``free_port``."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support import WaitTimedOut, free_port, wait_until


class TestWaitUntil:
    def test_returns_the_first_truthy_value(self) -> None:
        """The predicate's first truthy answer is what the wait gives back."""
        answers: Iterator[object] = iter([None, 0, [], "ready", "later"])
        assert wait_until(lambda: next(answers), what="ready", timeout=5, interval=0) == "ready"

    def test_times_out_naming_what_and_the_last_value(self) -> None:
        """A wait that never succeeds fails the test with what it waited for and what it last saw."""
        with pytest.raises(WaitTimedOut, match=r"0.05 s waiting for a finished event \(last: \[\]\)"):
            wait_until(lambda: [], what="a finished event", timeout=0.05, interval=0.01)

    def test_a_timeout_is_an_assertion_failure(self) -> None:
        """pytest reports a timed-out wait as a failed assertion, not as an error in the test."""
        with pytest.raises(AssertionError):
            wait_until(lambda: False, what="never", timeout=0, interval=0)

    def test_a_zero_timeout_still_asks_once(self) -> None:
        """A zero timeout still asks the predicate once."""
        assert wait_until(lambda: 7, what="seven", timeout=0) == 7

    def test_ignored_exceptions_count_as_not_yet(self) -> None:
        """An ignored exception type means 'not yet'; the last one is shown on timeout."""
        answers: Iterator[Exception | str] = iter(
            [ConnectionError("refused"), ConnectionError("refused"), "up"]
        )

        def probe() -> str:
            answer = next(answers)
            if isinstance(answer, Exception):
                raise answer
            return answer

        up = wait_until(probe, what="the server", timeout=5, interval=0, ignoring=(ConnectionError,))
        assert up == "up"
        with pytest.raises(WaitTimedOut, match=r"last: ConnectionRefusedError\('nope'\)"):
            wait_until(_refuse, what="nothing", timeout=0.02, interval=0.01, ignoring=(ConnectionError,))

    def test_other_exceptions_propagate(self) -> None:
        """An exception not ignored ends the wait at once."""
        with pytest.raises(ConnectionRefusedError):
            wait_until(_refuse, what="nothing", timeout=5, interval=0)

    def test_a_long_last_value_is_cut_short(self) -> None:
        """The message stays readable when the last value seen is long."""

        def refuse_at_length() -> None:
            raise ConnectionRefusedError("x" * 10_000)

        with pytest.raises(WaitTimedOut) as timed_out:
            wait_until(refuse_at_length, what="x", timeout=0, ignoring=(ConnectionError,))
        assert len(str(timed_out.value)) < 700


def _refuse() -> None:
    raise ConnectionRefusedError("nope")


class TestFreePort:
    def test_the_port_can_be_bound_on_loopback(self) -> None:
        """The returned port is free: a server can listen on it right away."""
        port = free_port()
        assert 0 < port < 65536
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
            server.listen()
