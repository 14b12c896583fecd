"""Serialise ``ast.parse`` across the threads of a test session (CPython gh-106905).

CPython 3.11 (3.11.7 on our machines) keeps the AST constructor's recursion counter in one place
per interpreter: a thread that starts converting a tree resets it under another thread's feet, and
that one ends with ``SystemError: AST constructor recursion depth mismatch``. pytest parses a whole
test module to print a failure, and Python 3.11's traceback module parses each frame's line to
place its carets; our sessions run threads that format tracebacks (the sandbox's moto server,
scheduler and balancer, Celery's result consumer while a test restarts Redis). When both met, a
CI run died with ``INTERNALERROR`` while reporting a first try, and the rest of the suite never
ran. One lock around every parse makes the two take turns.

Plain names only at import: tests/conftest.py loads this for every run, unit runs included.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable
from typing import Any

_LOCK = threading.RLock()  # re-entrant: the GC may run a finaliser that formats a traceback mid-parse


def locked(parse: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``parse`` made to hold one lock, shared by every thread, while it runs."""
    if getattr(parse, "__wrapped_by_thread_safe_ast__", False):
        return parse

    def parse_in_turn(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return parse(*args, **kwargs)

    parse_in_turn.__wrapped_by_thread_safe_ast__ = True  # type: ignore[attr-defined]
    parse_in_turn.__wrapped__ = parse  # type: ignore[attr-defined]
    return parse_in_turn


def pytest_configure(config: object) -> None:
    ast.parse = locked(ast.parse)  # type: ignore[assignment]
