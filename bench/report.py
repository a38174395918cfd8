"""A benchmark's figures as a Markdown table: both systems, the ratio ``ours / peer``, the target and OK/MISS (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One figure: ours and the peer's (None: not measured), a target ours must not exceed (None: none)."""

    label: str
    ours: float | None
    peer: float | None
    unit: str
    target: float | None = None
    ours_runs: int = 0
    peer_runs: int = 0
    out_of: bool = False  # a count of the runs (``2 of 3``) rather than a median


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    if unit in ("s",):
        return f"{value:.2f} {unit}"
    if unit == "MB":
        return f"{value:.2f} {unit}"
    if unit == "MiB":
        return f"{value:.1f} {unit}"
    text = f"{value:g}"
    return f"{text} {unit}".strip()


def ratio(ours: float | None, peer: float | None) -> str:
    """``ours / peer`` as printed (``0.52x``); ``n/a`` when either is missing or the peer's is 0."""
    if ours is None or peer is None or peer == 0:
        return "n/a"
    return f"{ours / peer:.2f}x"


def verdict(ours: float | None, target: float | None) -> str:
    if target is None:
        return ""
    if ours is None:
        return f"<= {target:g}: not measured"
    return f"<= {target:g}: {'OK' if ours <= target else 'MISS'}"


def _runs(n: int) -> str:
    return f" ({n})" if n > 1 else ""


def _cell(value: float | None, unit: str, runs: int, out_of: bool) -> str:
    if out_of:
        return "not measured" if value is None or runs == 0 else f"{value:g} of {runs}"
    return number(value, unit) + _runs(runs)


def render(rows: list[Row], ours: str, peer: str) -> str:
    lines = [f"| figure | {ours} | {peer} | {ours} / {peer} | target |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(
            f"| {row.label} | {_cell(row.ours, row.unit, row.ours_runs, row.out_of)} "
            f"| {_cell(row.peer, row.unit, row.peer_runs, row.out_of)} "
            f"| {'' if row.out_of else ratio(row.ours, row.peer)} | {verdict(row.ours, row.target)} |"
        )
    return "\n".join(lines)
