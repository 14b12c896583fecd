"""The worker host's status page: recent deployments, a timeline of their stages, and why each ended.

Two halves: ``describe_*`` (``worker.status_data``) read the store and return plain dicts holding
only the fields we chose to show (never the request, which may carry build args or environment
values), and ``render_status_page`` turns those dicts into one self-contained HTML document, with
each deployment's ending, traffic steps and gate measurements from ``worker.status_details``.
Everything taken from a deployment is HTML-escaped; the page loads nothing from elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from html import escape
from typing import Any

from deploy_agent.worker.status_data import (
    MAX_DEPLOYMENTS,
    RUNNING,
    describe_deployment,
    describe_recent,
    summarize_deployment,
)
from deploy_agent.worker.status_details import DETAIL_STYLE, parse_time, render_details

#: the data half lives in ``status_data``; these names stay importable from here
__all__ = [
    "CONTENT_SECURITY_POLICY",
    "MAX_DEPLOYMENTS",
    "describe_deployment",
    "describe_recent",
    "format_duration",
    "plan_bar",
    "render_status_page",
    "summarize_deployment",
]


# --- the page ----------------------------------------------------------------------------------
# The page re-fetches itself rather than re-rendering from /api/deployments in JavaScript: one
# renderer (this module) does all the escaping and layout.
SCRIPT = """
(function () {
  async function refresh() {
    if (document.hidden) return;
    try {
      const response = await fetch(location.pathname, {cache: "no-store"});
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const next = page.querySelector("main");
      if (next) document.querySelector("main").replaceWith(next);
    } catch (e) { /* the worker may be restarting: keep the last page */ }
  }
  setInterval(refresh, 2000);
})();
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

STYLE = """
:root { --ok:#1a7f37; --rb:#bf8700; --bad:#cf222e; --late:#bc4c00; --rej:#8250df; --sup:#6e7781;
  --run:#0969da; --skip:#d0d7de; --fg:#1f2328; --muted:#656d76; --line:#d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: #f6f8fa; }
header { padding: 14px 24px; background: #24292f; color: #fff; display: flex; gap: 16px;
  align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
header .counts { color: #d0d7de; }
main { padding: 12px 24px 32px; max-width: 1200px; }
h2 { font-size: 15px; margin: 18px 0 8px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
.deployment { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px;
  margin-bottom: 10px; }
.head { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
.service { font-weight: 600; }
.meta { color: var(--muted); font-size: 12px; }
.id { font-family: ui-monospace, monospace; font-size: 12px; color: var(--muted); }
.badge { display: inline-block; min-width: 88px; text-align: center; padding: 1px 8px;
  border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; }
.strategy { border: 1px solid var(--line); border-radius: 4px; padding: 0 6px; font-size: 12px; }
.o-succeeded { background: var(--ok); } .o-rolled_back { background: var(--rb); }
.o-failed { background: var(--bad); } .o-timed_out { background: var(--late); }
.o-rejected { background: var(--rej); } .o-superseded { background: var(--sup); }
.o-running { background: var(--run); } .o-skipped { background: var(--skip); }
.o-other { background: var(--sup); }
.timeline { margin-top: 8px; }
.stage { display: grid; grid-template-columns: 90px 1fr 64px; gap: 8px; align-items: center;
  height: 16px; font-size: 11px; }
.stage .name { color: var(--muted); text-align: right; }
.stage .track { position: relative; height: 10px; background: #f0f2f4; border-radius: 2px; }
.stage .bar { position: absolute; top: 0; height: 10px; min-width: 2px; border-radius: 2px; }
.stage .took { color: var(--muted); font-variant-numeric: tabular-nums; }
.empty { color: var(--muted); }
"""


def render_status_page(deployments: list[dict[str, Any]]) -> str:
    """Return the HTML page: running deployments first, then the rest in the order given (newest first)."""
    shown = deployments[:MAX_DEPLOYMENTS]
    running = [d for d in shown if d.get("outcome") == RUNNING]
    finished = [d for d in shown if d.get("outcome") != RUNNING]
    sections = [
        _section("Running", running, "Nothing is deploying right now."),
        _section("Recent", finished, "No finished deployments yet."),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>deploy-agent status</title><style>{STYLE}{DETAIL_STYLE}</style></head><body>"
        '<header><h1>deploy-agent</h1><span class="counts">'
        f"{len(running)} running &middot; {len(finished)} recent</span></header>"
        f"<main>{''.join(sections)}</main><script>{SCRIPT}</script></body></html>\n"
    )


def _section(title: str, deployments: list[dict[str, Any]], empty: str) -> str:
    body = "".join(_deployment(d) for d in deployments) or f'<p class="empty">{escape(empty)}</p>'
    return f'<section class="{escape(title.lower())}"><h2>{escape(title)}</h2>{body}</section>'


def _deployment(d: dict[str, Any]) -> str:
    outcome = str(d.get("outcome") or RUNNING)
    duration = float(d.get("duration_seconds") or 0.0)
    started = parse_time(d.get("started_at"))
    return (
        f'<article class="deployment" data-id="{escape(str(d.get("id", "")))}" '
        f'data-outcome="{escape(outcome)}"><div class="head">'
        f'<span class="badge {_outcome_class(outcome)}">{escape(outcome)}</span>'
        f'<span class="service">{escape(str(d.get("cluster", "")))} / {escape(str(d.get("service", "")))}'
        "</span>"
        f'<span class="strategy">{escape(str(d.get("strategy", "")))}</span>'
        f'<span class="meta">{escape(_clock(started))} &middot; {escape(format_duration(duration))}</span>'
        f'<span class="id">{escape(str(d.get("id", "")))}</span></div>'
        f"{_timeline(d.get('stages') or [], started, duration)}{render_details(d)}</article>"
    )


def _timeline(stages: list[dict[str, Any]], started: datetime | None, total: float) -> str:
    if not stages or started is None:
        return ""
    rows = []
    for stage in stages:
        offset, length = plan_bar(stage, started, total)
        span = 100.0 * length / total if total > 0 else 0.0
        left = 100.0 * offset / total if total > 0 else 0.0
        name, outcome = str(stage.get("name", "")), str(stage.get("outcome", ""))
        rows.append(
            f'<div class="stage" data-stage="{escape(name)}"><span class="name">{escape(name)}</span>'
            f'<div class="track"><div class="bar {_outcome_class(outcome)}" '
            f'style="left:{min(left, 100.0):.2f}%;width:{min(span, 100.0 - min(left, 100.0)):.2f}%" '
            f'title="{escape(name)}: {escape(outcome)}, {escape(format_duration(length))}"></div></div>'
            f'<span class="took">{escape(format_duration(length))}</span></div>'
        )
    return f'<div class="timeline">{"".join(rows)}</div>'


def plan_bar(stage: dict[str, Any], started: datetime, total: float) -> tuple[float, float]:
    """Return a stage's (offset, length) in seconds from the deployment start; open ones run to its end."""
    begin = parse_time(stage.get("started_at"))
    if begin is None:
        return 0.0, 0.0
    end = parse_time(stage.get("finished_at"))
    offset = max(0.0, (begin - started).total_seconds())
    length = (end - begin).total_seconds() if end is not None else total - offset
    return offset, max(0.0, length)


def format_duration(seconds: float) -> str:
    """Return a short human duration: ``0.4s``, ``12.0s``, ``3m 07s``, ``1h 02m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


_KNOWN_OUTCOMES = frozenset(
    {"succeeded", "rolled_back", "failed", "timed_out", "rejected", "superseded", "running", "skipped"}
)


def _outcome_class(outcome: str) -> str:
    # Only known names become class names: anything else would be attacker-chosen markup.
    return f"o-{outcome}" if outcome in _KNOWN_OUTCOMES else "o-other"


def _clock(moment: datetime | None) -> str:
    if moment is None:
        return ""
    utc = moment.astimezone(UTC) if moment.tzinfo is not None else moment
    return utc.strftime("%Y-%m-%d %H:%M:%S UTC")
