"""Pure helpers: medians, percentiles, ratios, and the markdown table."""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


def median(values: Sequence[float]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(clean) if clean else None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (pct in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return value / baseline


def paired_ratio(runs: list[dict], baseline_runs: list[dict], key: str = "rps") -> float | None:
    """The median of each run's ratio to the baseline measured in the same pass (seconds apart).

    The machine drifts between passes; within one pass both sides share its state, so the
    per-pass ratios cancel the drift that a ratio of the two medians keeps.
    """
    return median([ratio(run.get(key), base.get(key)) for run, base in zip(runs, baseline_runs, strict=False)])


def fmt(value: float | None, unit: str = "", digits: int | None = None) -> str:
    """A number for the table: '—' when missing, fewer decimals as it grows."""
    if value is None:
        return "—"
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}{unit}"


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


@dataclass
class Row:
    """One line of the table; `ok` is None when the row has no goal or could not be measured."""

    name: str
    measures: str
    value: str
    baseline: str = ""
    ratio: str = ""
    goal: str = ""
    ok: bool | None = None
    data: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "—"}[self.ok]


HEADER = ("row", "measures", "TaskHub", "next to", "ratio", "goal", "verdict")


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for row in rows:
        cells = (row.name, row.measures, row.value, row.baseline, row.ratio, row.goal, row.verdict)
        lines.append("| " + " | ".join(c.replace("|", "\\|") if c else "" for c in cells) + " |")
    return "\n".join(lines)
