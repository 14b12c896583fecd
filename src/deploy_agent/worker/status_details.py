"""The HTML of a deployment's details on the status page: why it ended, its traffic steps, its gates.

Renders the ``ended_because``, ``traffic_steps``, ``gates`` and ``service_deployment`` fields of a
summary (``worker.status_data``). Every value is escaped; only names from fixed sets become class
names, and the only inline styles are widths computed here from numbers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from typing import Any, TypeGuard

#: measurements shown per deployment (the newest); the API has them all
GATES_SHOWN = 12
#: how many characters of a failure's reason the page shows (the API has it whole)
REASON_SHOWN = 400
_VERDICTS = frozenset({"successful", "failed", "inconclusive"})
_ACTIONS = frozenset({"CONTINUE", "ROLLBACK"})

DETAIL_STYLE = """
.ended { margin-top: 8px; padding: 6px 10px; border-left: 3px solid var(--bad); background: #fff8f8;
  font-size: 13px; }
.ended .why { font-weight: 600; }
.ended code, .details code { font: 12px ui-monospace, monospace; background: #f0f2f4; padding: 0 4px;
  border-radius: 3px; }
.ended .reason { color: var(--fg); }
.ended .extra { display: block; color: var(--muted); font-size: 12px; margin-top: 2px; }
.details { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px;
  margin-top: 8px; }
.details h3 { font-size: 11px; margin: 0 0 4px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
.details table { border-collapse: collapse; font-size: 12px; }
.details td, .details th { padding: 1px 12px 1px 0; text-align: left; white-space: nowrap; }
.details th { color: var(--muted); font-weight: 500; }
.details .num { text-align: right; font-variant-numeric: tabular-nums; }
.details .more { color: var(--muted); font-size: 11px; }
.verdict { padding: 0 6px; border-radius: 8px; color: #fff; font-size: 11px; font-weight: 600; }
.v-successful { background: var(--ok); } .v-failed { background: var(--bad); }
.v-inconclusive { background: var(--late); } .v-other { background: var(--sup); }
.a-CONTINUE { color: var(--ok); font-weight: 600; } .a-ROLLBACK { color: var(--bad); font-weight: 600; }
.weights { display: flex; width: 160px; height: 10px; border-radius: 2px; overflow: hidden;
  background: #f0f2f4; }
.w0 { background: #8c959f; } .w1 { background: var(--ok); } .w2 { background: var(--run); }
.details > div { min-width: 0; overflow: hidden; }
.details > div:only-child { grid-column: 1 / -1; }
.details td.shares { white-space: normal; overflow-wrap: anywhere; }
.legend { margin: 0 0 4px; font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px;
  vertical-align: -1px; }
.lifecycle { font-size: 12px; color: var(--muted); margin-top: 4px; }
.lifecycle .stage-name { font: 11px ui-monospace, monospace; color: var(--fg); }
"""


def render_details(d: dict[str, Any]) -> str:
    """Return the HTML of one deployment's ending, traffic steps, gates and ECS deployment ('' if none)."""
    ended = d.get("ended_because")
    steps = d.get("traffic_steps") or []
    gates = d.get("gates") or []
    native = d.get("service_deployment")
    columns = [c for c in (_traffic(steps, native is not None), _gates(gates)) if c]
    grid = f'<div class="details">{"".join(columns)}</div>' if columns else ""
    return (
        (_ending(ended) if isinstance(ended, dict) else "")
        + grid
        + (_lifecycle(native) if isinstance(native, dict) else "")
    )


def describe_ending(ended: dict[str, Any]) -> str:
    """Return the "why it ended" sentence as plain text: outcome, trigger, gate, step and reason.

    ``rolled back (trigger alarm): the alarm gate failed at step 2 (50%) — alarm in ALARM state: 5xx``
    """
    sentence = str(ended.get("outcome") or "ended").replace("_", " ")
    if ended.get("trigger"):
        sentence += f" (trigger {ended['trigger']})"
    if ended.get("gate"):
        name = f" {ended['gate_name']}" if ended.get("gate_name") else ""
        sentence += f": the {ended['gate']} gate{name} failed"
    if ended.get("step"):
        sentence += f" at {ended['step']}"
    reason = str(ended.get("reason") or "")
    if len(reason) > REASON_SHOWN:
        reason = reason[: REASON_SHOWN - 1] + "…"
    return f"{sentence} — {reason}" if reason else sentence


def _ending(ended: dict[str, Any]) -> str:
    extra = [
        f"ECS: {ended['ecs_rollback_reason']}" if ended.get("ecs_rollback_reason") else "",
        f"the rollback did not settle: {ended['rollback_failure']}" if ended.get("rollback_failure") else "",
    ]
    notes = "".join(f'<span class="extra">{escape(e)}</span>' for e in extra if e)
    return (
        f'<div class="ended" data-trigger="{escape(str(ended.get("trigger") or ""))}">'
        f'<span class="why">Why it ended:</span> {escape(describe_ending(ended))}{notes}</div>'
    )


def _traffic(steps: list[dict[str, Any]], native: bool) -> str:
    if not steps:
        return ""
    if native:
        head = '<tr><th>hook</th><th colspan="2">new revision\'s share</th><th>answer</th>'
        rows, legend = "".join(_native_step(s) for s in steps), ""
    else:
        head = '<tr><th>step</th><th colspan="2">weights</th><th class="num">requests failed</th>'
        # The target groups are named once, above the table: their names are long and alike.
        groups = next((list(w) for w in map(_weights_of, steps) if w), [])
        rows = "".join(_listener_step(s, groups) for s in steps)
        legend = "".join(
            f'<span class="swatch w{min(i, 2)}"></span>{escape(name)} ' for i, name in enumerate(groups)
        )
        legend = f'<p class="legend">{legend}</p>' if legend else ""
    title = "Traffic steps (PAUSE hooks)" if native else "Traffic steps"
    return (
        f'<div class="traffic"><h3>{title}</h3>{legend}<table>{head}<th class="num">time</th></tr>'
        f"{rows}</table></div>"
    )


def _listener_step(step: dict[str, Any], groups: list[str]) -> str:
    label = str(step.get("label", ""))
    weights = _weights_of(step)
    if not weights:
        shares, bar = "original actions put back", ""
    else:
        named = " \u00b7 ".join(f"{name} {_number(w)}" for name, w in weights.items())
        same = list(weights) == groups
        shares = " / ".join(_number(w) for w in weights.values()) if same else named
        bar = _weights_bar(list(weights.values()), named)
    dropped = ""
    if step.get("requests") is not None:
        dropped = f"{_number(step.get('failures'))} of {_number(step.get('requests'))}"
    shown = f'class="shares">{escape(shares)}</td>'
    cells = f"<td>{bar}</td><td {shown}" if bar else f'<td colspan="2" {shown}'
    return (
        f'<tr class="step" data-label="{escape(label)}"><td><code>{escape(label)}</code></td>'
        f'{cells}<td class="num">{escape(dropped)}</td>'
        f'<td class="num">{escape(_time(step.get("at")))}</td></tr>'
    )


def _weights_of(step: dict[str, Any]) -> dict[str, Any]:
    weights = step.get("weights")
    return {str(k): v for k, v in weights.items()} if isinstance(weights, dict) else {}


def _native_step(step: dict[str, Any]) -> str:
    point, action = str(step.get("point", "")), str(step.get("action", ""))
    percent = step.get("traffic_percent")
    share, bar = "", ""
    if _is_number(percent):
        share = f"new {_number(percent)}%"
        bar = _weights_bar([100.0 - percent, percent], share)
    action_class = f"a-{action}" if action in _ACTIONS else ""
    return (
        f'<tr class="step" data-label="{escape(point)}"><td><code>{escape(point)}</code></td>'
        f"<td>{bar}</td><td>{escape(share)}</td>"
        f'<td class="{action_class}">{escape(action)}</td>'
        f'<td class="num">{escape(_time(step.get("at")))}</td></tr>'
    )


def _weights_bar(weights: list[Any], title: str) -> str:
    """Return a bar split by ``weights`` (anything but a positive number takes no room)."""
    numbers = [float(w) if _is_number(w) and w > 0 else 0.0 for w in weights]
    total = sum(numbers)
    if total <= 0:
        return '<div class="weights"></div>'
    segments = "".join(
        f'<span class="w{min(i, 2)}" style="width:{100.0 * w / total:.2f}%"></span>'
        for i, w in enumerate(numbers)
        if w > 0
    )
    return f'<div class="weights" title="{escape(title)}">{segments}</div>'


def _gates(gates: list[dict[str, Any]]) -> str:
    if not gates:
        return ""
    shown = gates[-GATES_SHOWN:]
    rows = "".join(
        f'<tr class="measurement"><td><code>{escape(str(g.get("gate", "")))}</code></td>'
        f"<td>{escape(str(g.get('step', '')))}</td>"
        f'<td class="num">{escape(_number(g.get("value")))}</td>'
        f'<td><span class="verdict {_verdict_class(g.get("verdict"))}">'
        f"{escape(str(g.get('verdict', '')))}</span></td>"
        f'<td class="num">{escape(_time(g.get("at")))}</td></tr>'
        for g in shown
    )
    more = len(gates) - len(shown)
    note = f'<p class="more">{more} earlier measurements not shown</p>' if more > 0 else ""
    return (
        '<div class="gates"><h3>Gate measurements</h3><table><tr><th>gate</th><th>step</th>'
        f'<th class="num">value</th><th>verdict</th><th class="num">time</th></tr>{rows}</table>{note}</div>'
    )


def _lifecycle(native: dict[str, Any]) -> str:
    stages = native.get("lifecycle_stages") or []
    chain = " &rarr; ".join(
        f'<span class="stage-name">{escape(str(s.get("stage", "")))}</span> {escape(_time(s.get("at")))}'
        for s in stages
    )
    status = escape(str(native.get("status") or "unknown"))
    reason = native.get("status_reason")
    why = f" ({escape(str(reason))})" if reason else ""
    return f'<div class="lifecycle">ECS service deployment: <b>{status}</b>{why}<br>{chain}</div>'


def _verdict_class(verdict: Any) -> str:
    # Only known verdicts become class names: anything else would be attacker-chosen markup.
    return f"v-{verdict}" if verdict in _VERDICTS else "v-other"


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> str:
    if not _is_number(value):
        return "-" if value is None or isinstance(value, float) else str(value)
    return f"{value:g}" if float(value).is_integer() else f"{value:.4g}"


def parse_time(value: Any) -> datetime | None:
    """Return the ISO time ``value`` as a datetime, or None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _time(value: Any) -> str:
    moment = parse_time(value)
    if moment is None:
        return ""
    return (moment.astimezone(UTC) if moment.tzinfo is not None else moment).strftime("%H:%M:%S")
