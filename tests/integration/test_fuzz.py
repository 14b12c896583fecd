"""Malformed messages, generated: every one ends ``rejected`` with named problems, and nothing is touched.

The entry task runs in-process (eager) for the property test; a fixed sample then goes through a
real worker. Strategies break a valid base message in exactly one way each, so no example is valid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pydantic.alias_generators import to_camel

from deploy_agent.models._base import MessageModel
from deploy_agent.tasks import entry
from ecs_sandbox.environment import Sandbox, provision_service
from tests.integration.conftest import unique
from tests.integration.test_rolling import served_version
from tests.integration.test_security import is_alive, isolated_stack, prebuilt_release

pytestmark = pytest.mark.integration

IMAGE_URI = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:v1"
BASE: dict[str, Any] = {"cluster_name": "fuzz", "service_name": "svc", "image": {"uri": IMAGE_URI}}
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "deploy_to_ecs_task.v1.json"
HUGE = 100_000
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
DEEP = 1000
#: characters that no name, id, region or image pattern allows, and that break naive code
ODD = ["\x00", "\u202e", "\u200f", "\u200b", "\ufeff", "\U0001f600", "\ud800", "\udfff", "\uffff", "\n", " "]
JSON_ODD = [c for c in ODD if not 0xD800 <= ord(c) <= 0xDFFF]


def _known_names() -> set[str]:
    """Return every field name the message models accept (snake, camel) and the seed's names."""
    import deploy_agent.models  # noqa: F401  (registers every MessageModel subclass)

    names = {"healthCheckEndpoint", "health_check_endpoint", "deploymentConfiguration", "type"}
    names |= {"deployment_configuration", "valueFrom", "name", "value"}
    pending: list[type[MessageModel]] = [MessageModel]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        for field in model.model_fields:
            names |= {field, to_camel(field)}
    return names


KNOWN = _known_names()
#: strings pydantic's lax mode reads as booleans
BOOL_WORDS = {"0", "1", "true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"}

# ---- values of the wrong JSON type, never ones pydantic's lax mode would coerce ----
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text()
)
not_a_string = st.one_of(
    st.booleans(), st.integers(), st.floats(allow_nan=False), st.lists(json_scalars, max_size=3), st.just({})
)
not_an_int = st.one_of(
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), json_scalars, max_size=2),
    st.text().filter(lambda s: not _parses_as_number(s)),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
)
not_an_object = st.one_of(st.booleans(), st.integers(), st.text(), st.lists(json_scalars, max_size=3))
not_a_bool = st.one_of(
    st.lists(json_scalars, max_size=3),
    st.just({}),
    st.integers().filter(lambda i: i not in (0, 1)),
    st.text().filter(lambda s: s.strip().lower() not in BOOL_WORDS),
)
wrong_schema_version = st.one_of(
    st.integers().filter(lambda i: i != 1),
    st.text(),
    st.none(),
    st.just(False),
    st.floats(allow_nan=False).filter(lambda f: f != 1),
    st.lists(st.just(1), min_size=1, max_size=2),
)

#: path in the base message -> values certainly wrong there
WRONG_TYPES: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("schema_version",): wrong_schema_version,
    ("deployment_id",): not_a_string,
    ("cluster_name",): not_a_string | st.none(),
    ("service_name",): not_a_string | st.none(),
    ("region",): not_a_string,
    ("container_name",): not_a_string,
    ("requested_by",): not_a_string,
    ("desired_count",): not_an_int,
    ("timeout_seconds",): not_an_int,
    ("build",): not_an_object,
    ("image",): not_an_object | st.none(),
    ("image", "uri"): not_a_string,
    ("ecr",): not_an_object | st.none(),
    ("ecr", "create_repository"): not_a_bool,
    ("ecr", "scan_on_push"): not_a_bool,
    ("task_definition",): not_an_object,
    ("strategy",): not_an_object | st.none(),
    ("strategy", "maximum_percent"): not_an_int,
    ("strategy", "circuit_breaker"): not_a_bool,
    ("health_check",): not_an_object,
    ("rollback",): not_an_object | st.none(),
    ("rollback", "enabled"): not_a_bool,
    ("rollback", "alarm_names"): not_an_object.filter(lambda v: not isinstance(v, list)),
    ("labels",): not_an_object | st.dictionaries(st.text(min_size=1, max_size=5), not_a_string, min_size=1),
}
STRING_PATHS = [
    ("cluster_name",),
    ("service_name",),
    ("deployment_id",),
    ("region",),
    ("container_name",),
    ("image", "uri"),
    ("strategy", "type"),
]
FIELD_PATHS = sorted(WRONG_TYPES)


def _parses_as_number(text: str) -> bool:
    try:
        float(text.replace("_", ""))
    except ValueError:
        return False
    return True


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """Return a copy of BASE with ``value`` at ``path`` (parents created as objects)."""
    message: dict[str, Any] = json.loads(json.dumps(BASE))
    if path[:1] == ("strategy",) and len(path) > 1:
        message["strategy"] = {"type": "rolling"}
    node = message
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return message


def _nest(kind: str, depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


odd_text = st.builds(
    lambda before, odd, after: before + odd + after,
    st.text(max_size=8),
    st.sampled_from(ODD),
    st.text(max_size=8),
)
huge_text = st.builds(
    lambda ch, extra: ch * (HUGE + extra), st.sampled_from(["a", "-", *ODD]), st.integers(0, 3)
)
deep_value = st.builds(_nest, st.sampled_from(["list", "dict"]), st.integers(DEEP - 5, DEEP))
unknown_key = st.one_of(st.text(min_size=1, max_size=20), odd_text, huge_text).filter(
    lambda k: k not in KNOWN
)


@st.composite
def wrong_type(draw: st.DrawFn) -> dict[str, Any]:
    path = draw(st.sampled_from(FIELD_PATHS))
    return _with(path, draw(WRONG_TYPES[path]))


@st.composite
def odd_or_huge_string(draw: st.DrawFn) -> dict[str, Any]:
    return _with(draw(st.sampled_from(STRING_PATHS)), draw(odd_text | huge_text))


@st.composite
def deeply_nested(draw: st.DrawFn) -> Any:
    deep = draw(deep_value)
    where = draw(st.sampled_from(["payload", "field", "unknown", "log_options"]))
    if where == "payload":
        return deep
    if where == "field":
        return _with(draw(st.sampled_from([p for p in FIELD_PATHS if p != ("labels",)])), deep)
    if where == "unknown":
        return {**BASE, "nested": deep}
    task_definition = {
        "family": "svc",
        "cpu": "256",
        "memory": "512",
        "container_definitions": [
            {"name": "app", "log_configuration": {"log_driver": "awslogs", "options": {"deep": deep}}}
        ],
    }
    return {**BASE, "task_definition": task_definition}


@st.composite
def missing_required(draw: st.DrawFn) -> dict[str, Any]:
    dropped = draw(st.sets(st.sampled_from(["cluster_name", "service_name", "image"]), min_size=1))
    message = {k: v for k, v in BASE.items() if k not in dropped}
    if draw(st.booleans()):
        message["requested_by"] = draw(st.text(max_size=20))
    return message


@st.composite
def extra_fields(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(json.dumps(BASE))
    where = draw(st.sampled_from(["top", "image", "ecr", "rollback", "strategy", "health_check"]))
    extra = draw(st.dictionaries(unknown_key, json_scalars, min_size=1, max_size=3))
    if where == "top":
        message.update(extra)
    elif where == "image":
        message["image"].update(extra)
    elif where == "strategy":
        message["strategy"] = {"type": "rolling", **extra}
    elif where == "health_check":
        message["health_check"] = {"url": "http://127.0.0.1:1/health", **extra}
    else:
        message[where] = extra
    return message


def _is_message_object(text: str | bytes) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):
        return False


non_object_payloads = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(json_scalars, max_size=5),
    st.lists(st.just(BASE), min_size=1, max_size=2),
    st.text().filter(lambda s: not _is_message_object(s)),
    st.sampled_from(["", "{", '{"cluster_name": "fuzz",', "[" * DEEP + "]" * DEEP, "null", "[]", "1e999"]),
    st.builds(lambda text: text[: len(text) // 2], st.just(json.dumps(BASE))),
    st.just(" " * (1_048_577)),
    st.binary(max_size=20).filter(lambda b: not _is_message_object(b)),
)


#: one category per way of breaking a message, each drawn equally often
CATEGORIES: list[st.SearchStrategy[Any]] = [
    wrong_type(),
    odd_or_huge_string(),
    deeply_nested(),
    missing_required(),
    extra_fields(),
    st.builds(lambda v: {**BASE, "schema_version": v}, wrong_schema_version),
    non_object_payloads,
]
malformed_messages = st.sampled_from(CATEGORIES).flatmap(lambda category: category)


def _depth(value: Any, limit: int = 200) -> int:
    depth, level = 0, [value]
    while level and depth <= limit:
        depth += 1
        level = [
            child
            for node in level
            if isinstance(node, (list, dict))
            for child in (node.values() if isinstance(node, dict) else node)
        ]
    return depth


def _publishable(message: Any) -> bool:
    """Return whether the Celery publisher can send ``message`` as JSON at all."""
    if isinstance(message, (bytes, bytearray)) or _depth(message) > 100:
        return False
    try:
        json.dumps(message)
    except (ValueError, TypeError, RecursionError):
        return False
    return True


def _check_rejected(result: Any) -> list[str]:
    """Return what is wrong with ``result`` as the answer to an invalid message (empty: nothing)."""
    if not isinstance(result, dict):
        return [f"result is {type(result).__name__}, not a DeploymentResult"]
    problems = []
    if result.get("outcome") != "rejected":
        problems.append(f"outcome {result.get('outcome')!r}")
    errors = result.get("errors")
    if not errors:
        problems.append("no errors listed")
    elif not all(isinstance(e.get("field"), str) and isinstance(e.get("problem"), str) for e in errors):
        problems.append(f"an error without field/problem strings: {errors[:3]!r}")
    return problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 160 else f"{text[:150]}... ({len(text)} chars)"


FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


class TestPropertyBased:
    def test_malformed_messages_are_rejected_in_process(
        self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every generated malformed message ends rejected, each problem named; no AWS call is made."""
        reached_pipeline: list[Any] = []
        monkeypatch.setattr(entry, "_accept_and_run", lambda *args: reached_pipeline.append(args) or None)
        crashes: list[str] = []
        not_rejected: list[str] = []
        counts = {"messages": 0}
        calls_before = sandbox.moto.api_calls()

        @FUZZ_SETTINGS
        @seed(20240611)
        @given(malformed_messages)
        def run(payload: Any) -> None:
            counts["messages"] += 1
            try:
                result = entry.deploy.apply(kwargs={"request": payload}).get()
            except Exception as exc:  # the property: nothing escapes
                crashes.append(f"{type(exc).__name__}: {str(exc)[:120]} <- {_short(payload)}")
                return
            if problems := _check_rejected(result):
                not_rejected.append(f"{problems} <- {_short(payload)}")

        run()
        calls_after = sandbox.moto.api_calls()
        aws_calls = sum(calls_after.values()) - sum(calls_before.values())
        print(f"\nfuzzed={counts['messages']} crashes={len(crashes)} not rejected={len(not_rejected)}")
        print(f"AWS calls during the run={aws_calls}; reached the pipeline={len(reached_pipeline)}")
        for line in (crashes + not_rejected)[:10]:
            print("  ", line)
        assert counts["messages"] >= 250
        assert crashes == []
        assert not_rejected == []
        assert reached_pipeline == []
        assert calls_after == calls_before


def fixed_sample(strategy: st.SearchStrategy[Any], size: int) -> list[Any]:
    """Return the same ``size`` examples of ``strategy`` on every run (derandomized, generate phase only)."""
    drawn: list[Any] = []

    @settings(FUZZ_SETTINGS, max_examples=size, phases=[Phase.generate])
    @seed(7)
    @given(strategy)
    def collect(example: Any) -> None:
        drawn.append(example)

    collect()
    return drawn


class TestThroughTheWorker:
    def test_fuzzed_messages_then_a_valid_one(self, sandbox: Sandbox, push_app: Any, tmp_path: Path) -> None:
        """~50 fuzzed messages through a real worker all end rejected; a valid one then succeeds; it lives."""
        sample = fixed_sample(malformed_messages.filter(_publishable), 50)
        cluster, service = "fuzz", unique("wire")
        svc = provision_service(sandbox, cluster, service, image=push_app("v1"), desired_count=1)
        new_image = push_app("v2")

        with isolated_stack(sandbox, tmp_path, "fuzz") as stack:
            app = stack.app
            pending = [app.send_task("deploy_agent.deploy", kwargs={"request": m}) for m in sample]
            bad: list[str] = []
            for message, result in zip(sample, pending, strict=True):
                try:
                    problems = _check_rejected(result.get(timeout=60))
                except Exception as exc:
                    problems = [f"{type(exc).__name__}: {str(exc)[:120]}"]
                if problems:
                    bad.append(f"{problems} <- {_short(message)}")
            valid = app.send_task(
                "deploy_agent.deploy", kwargs={"request": prebuilt_release(svc, cluster, service, new_image)}
            ).get(timeout=120)
            alive = is_alive(stack.worker.pid)

        print(f"\nfuzzed through the worker={len(sample)} not rejected={len(bad)}")
        print(f"valid deployment afterwards={valid['outcome']}; worker alive={alive}")
        for line in bad[:10]:
            print("  ", line)
        assert len(sample) >= 40
        assert bad == []
        assert valid["outcome"] == "succeeded", valid
        assert served_version(svc) == "v2"
        assert alive


class TestFuzzFindings:
    """What fuzzing found: three bugs fixed since, kept as regressions."""

    def test_unresolvable_build_context_is_rejected(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A message whose build.context the OS cannot resolve ends rejected, like any other bad context."""
        monkeypatch.setattr(entry, "_accept_and_run", lambda *args: None)
        contexts = ["web\x00", "a" * 300, "x/" * 2045]
        escaped = []
        for context in contexts:
            message = {**BASE, "image": {"repository": "web"}, "build": {"context": context}}
            try:
                problems = _check_rejected(entry.deploy.apply(kwargs={"request": message}).get())
            except Exception as exc:
                problems = [f"{type(exc).__name__} escaped"]
            if problems:
                escaped.append(f"{problems} <- {_short(context)}")
        print(f"\nbuild contexts tried={len(contexts)} not rejected={escaped}")
        assert escaped == []

    def test_values_the_schema_rejects_are_rejected(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every message the published JSON Schema rejects for a wrong type, the worker rejects too."""
        import jsonschema

        schema = json.loads(SCHEMA_PATH.read_text())
        monkeypatch.setattr(entry, "_accept_and_run", lambda *args: {"outcome": "accepted"})
        cases = {
            "schema_version=true": {**BASE, "schema_version": True},
            'desired_count="5"': {**BASE, "desired_count": "5"},
            "desired_count=true": {**BASE, "desired_count": True},
            'timeout_seconds="600"': {**BASE, "timeout_seconds": "600"},
            'ecr.create_repository="yes"': {**BASE, "ecr": {"create_repository": "yes"}},
            "rollback.enabled=0": {**BASE, "rollback": {"enabled": 0}},
        }
        accepted = []
        for name, message in cases.items():
            assert not jsonschema.Draft202012Validator(schema).is_valid(message), name
            if _check_rejected(entry.deploy.apply(kwargs={"request": message}).get()):
                accepted.append(name)
        print(f"\nschema-invalid messages={len(cases)} accepted by the worker={accepted}")
        assert accepted == []

    def test_deep_message_through_the_worker_is_rejected(self, sandbox: Sandbox, tmp_path: Path) -> None:
        """A message nested 1000 deep, sent as JSON text to a real worker, ends rejected (not lost).

        The consumer's JSON decoder gives up on it (RecursionError -> kombu DecodeError) before the
        task runs; Celery's own consumer would log and drop it, and the publisher's get() would wait
        forever. The worker's consumer (``worker.signals.RejectingConsumer``) stores a rejected result.
        """
        from tests.integration.test_security import publish_raw

        deep = "[" * DEEP + "]" * DEEP
        body = f'[[], {{"request": {{"cluster_name": "fuzz", "labels": {deep}}}}}, {json.dumps(EMBED)}]'
        with isolated_stack(sandbox, tmp_path, "deep") as stack:
            task_id = publish_raw(stack.app, body.encode(), "application/json", "utf-8")
            outcome: Any
            try:
                outcome = stack.app.AsyncResult(task_id).get(timeout=10)
            except Exception as exc:
                outcome = exc
            alive = is_alive(stack.worker.pid)
            print(f"\nresult={_short(outcome)} worker alive={alive}")
        assert alive
        assert _check_rejected(outcome) == []
        assert outcome["errors"][0]["problem"] == "the message is nested too deeply to decode"
