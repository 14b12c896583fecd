"""Build args named like secrets are refused: they would be kept in the pushed image's history."""

from __future__ import annotations

import pytest

from deploy_agent.core.errors import RequestRejected
from deploy_agent.models import parse_request

from .messages import full

PLANTED = "v4lue-never-echoed"


def with_build_args(args: dict[str, str]) -> dict[str, object]:
    message = full()
    message["build"]["build_args"] = args
    return message


@pytest.mark.parametrize(
    "name",
    ["GITHUB_TOKEN", "npm_token", "ClientSecret", "DB_PASSWORD", "DB_PASSWD", "PASS", "api_key", "SSH_KEY"],
)
def test_secret_like_names_are_refused(name: str) -> None:
    """The error names build.build_args.<NAME>, says to use a secret, and never repeats the value."""
    with pytest.raises(RequestRejected) as caught:
        parse_request(with_build_args({"VERSION": "1", name: PLANTED}))
    assert caught.value.errors == [
        {"field": f"build.build_args.{name}", "problem": caught.value.errors[0]["problem"]}
    ]
    problem = caught.value.errors[0]["problem"]
    assert "named like a secret" in problem
    assert "secret" in problem.split(":")[-1]
    assert PLANTED not in caught.value.message
    assert PLANTED not in str(caught.value.errors)


@pytest.mark.parametrize("name", ["VERSION", "NODE_ENV", "GIT_SHA", "BUILD_DATE", "HTTP_PROXY_HOST"])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert parse_request(with_build_args({name: "x"})).build.build_args == {name: "x"}  # type: ignore[union-attr]
