"""The session's ``ast.parse`` survives the AST recursion-depth race (tests/thread_safe_ast.py)."""

from __future__ import annotations

import argparse
import ast
import inspect
import logging
import sys
import threading
import time
from collections.abc import Iterator

import pytest

SOURCE = inspect.getsource(argparse) + inspect.getsource(logging)


class _Finalised:
    """Garbage whose finaliser is Python code: collecting it mid-parse lets another thread run."""

    partner: object

    def __del__(self) -> None:
        pass


def _make_cyclic_garbage() -> None:
    for _ in range(200):
        first, second = _Finalised(), _Finalised()
        first.partner, second.partner = second, first


@pytest.fixture
def fast_thread_switching() -> Iterator[None]:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def test_the_session_parse_is_the_retrying_one() -> None:
    """tests/conftest.py loads the plugin: ``ast.parse`` retries for the whole session."""
    assert getattr(ast.parse, "__retries_ast_race__", False)


@pytest.mark.usefixtures("fast_thread_switching")
def test_two_threads_parsing_at_once_never_mismatch_the_recursion_depth() -> None:
    """Parses at two stack depths, with the GC switching threads mid-parse, all succeed.

    Without the retry, CPython 3.11.7 fails this within about 0.2 s (AST constructor recursion depth
    mismatch); the test gives it 1.5 s.
    """
    errors: list[str] = []
    deadline = time.monotonic() + 1.5

    def parse_until_the_deadline(depth: int) -> None:
        if depth:
            parse_until_the_deadline(depth - 1)
            return
        while time.monotonic() < deadline and not errors:
            _make_cyclic_garbage()
            try:
                ast.parse(SOURCE)
            except SystemError as error:
                errors.append(str(error))

    threads = [threading.Thread(target=parse_until_the_deadline, args=(depth,)) for depth in (5, 40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
