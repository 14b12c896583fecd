"""Make ``ast.parse`` survive CPython 3.11's AST recursion-depth race (gh-106905) in test sessions.

CPython 3.11 (3.11.7 on our machines) keeps the AST constructor's recursion counter in one place
per interpreter: a thread that starts converting a tree resets it under another thread's feet, and
that one ends with ``SystemError: AST constructor recursion depth mismatch``, having built a good
tree. pytest parses a whole test module to print a failure, and Python 3.11's traceback module
parses each frame's line to place its carets; our sessions run threads that format tracebacks
(the sandbox's moto server, scheduler and balancer, Celery's result consumer while a test restarts
Redis). When both met, a CI run died with ``INTERNALERROR`` while reporting a first try, and the
rest of the suite never ran.

The parse is simply done again: the race needs two conversions to overlap, so a second try almost
always runs alone. A lock would also do, but a thread holding it can be made to wait for a logging
handler's lock (a finaliser that logs, run by the GC mid-parse) that another thread holds while it
waits for the parse lock: a deadlock, where the retry risks nothing.

Plain names only at import: tests/conftest.py loads this for every run, unit runs included.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

#: tries before the error is let through (each one loses the race only when another parse overlaps)
TRIES = 20
MISMATCH = "AST constructor recursion depth mismatch"


def retried(parse: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``parse`` made to try again when it loses the recursion-depth race."""
    if getattr(parse, "__retries_ast_race__", False):
        return parse

    def parse_again_on_the_race(*args: Any, **kwargs: Any) -> Any:
        for _ in range(TRIES - 1):
            try:
                return parse(*args, **kwargs)
            except SystemError as error:
                if MISMATCH not in str(error):
                    raise
        return parse(*args, **kwargs)  # the last try lets its error through

    parse_again_on_the_race.__retries_ast_race__ = True  # type: ignore[attr-defined]
    parse_again_on_the_race.__wrapped__ = parse  # type: ignore[attr-defined]
    return parse_again_on_the_race


def pytest_configure(config: object) -> None:
    ast.parse = retried(ast.parse)  # type: ignore[assignment]
