"""A run report: a table of figures and a few pictures, as ``REPORT.md`` + ``summary.json`` and a console table.

It renders what the caller declares (``Row``s and ``Picture``s) and knows no tool's files or keys: the caller reads
its own outputs (``json_at`` helps) and decides what to show. It runs nothing, imports no torch, and a missing input
shows as "n/a" instead of failing, so a partial run still reports. The ``make demo`` report script is in the
Makefile's last stage.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perception.atomic import atomic_write_json, atomic_write_text


def format_value(value: Any, digits: int = 3) -> str:
    """How a figure is printed: "n/a" for missing or NaN, yes/no for booleans, ``digits`` decimals for floats."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"
    return str(value)


@dataclass(frozen=True)
class Row:
    """One figure: ``section`` (the stage), ``measure`` (what), ``value`` (raw, for summary.json) and ``text`` (as
    shown; default ``format_value(value)``)."""

    section: str
    measure: str
    value: Any
    text: str | None = None

    @property
    def shown(self) -> str:
        return self.text if self.text is not None else format_value(self.value)


@dataclass(frozen=True)
class Picture:
    """A picture of the report: a PNG under the report's folder (None = not produced in this run)."""

    title: str
    path: Path | None
    note: str = ""


@dataclass(frozen=True)
class Notes:
    """A titled block of Markdown lines (a list of files, how to open them...); empty = not produced in this run."""

    title: str
    lines: Sequence[str]


def json_at(path: Path, *keys: Any) -> Any:
    """The value at ``keys`` (dict keys / list indices) in a JSON file; None when the file or a key is missing."""
    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    for key in keys:
        if not isinstance(data, (dict, list)):
            return None
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def latest(pattern: str, root: Path) -> Path | None:
    """The most recently modified file matching ``pattern`` under ``root``, or None."""
    found = sorted(Path(root).glob(pattern), key=lambda p: p.stat().st_mtime) if Path(root).is_dir() else []
    return found[-1] if found else None


def video_frame(video: Path | None, out: Path, fraction: float = 0.5) -> Path | None:
    """Save the frame at ``fraction`` of a video's length as a picture; None when there is no video or frame."""
    if video is None or not Path(video).is_file():
        return None
    import cv2

    capture = cv2.VideoCapture(str(video))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if count <= 0:
        capture.release()
        return None
    capture.set(cv2.CAP_PROP_POS_FRAMES, int(count * fraction))
    ok, frame = capture.read()
    capture.release()
    return out if ok and cv2.imwrite(str(out), frame) else None


def plot_training_curves(metrics_csv: dict[str, Path | None], out: Path) -> Path | None:
    """Training loss (log scale) and validation BEV mAP per step of several ``perception fit`` runs, one picture,
    from their Lightning CSV logs (``logs/<version>/csv/metrics.csv``: columns step, train/loss, val/mAP)."""
    runs = {name: path for name, path in metrics_csv.items() if path is not None and Path(path).is_file()}
    if not runs:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    loss_axis, map_axis = figure.subplots(1, 2)
    for name, path in runs.items():
        with Path(path).open() as stream:
            records = list(csv.DictReader(stream))
        for axis, key in ((loss_axis, "train/loss"), (map_axis, "val/mAP")):
            points = [(int(r["step"]), float(r[key])) for r in records if r.get(key) not in (None, "")]
            if points:
                axis.plot(*zip(*points), label=name, marker="o" if key == "val/mAP" else None, markersize=3)
    loss_axis.set(title="training loss", xlabel="step", yscale="log")
    map_axis.set(title="validation BEV mAP", xlabel="step")
    for axis in (loss_axis, map_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out)
    return out


def plot_bars(groups: dict[str, dict[str, float | None]], out: Path, *, title: str, ylabel: str) -> Path | None:
    """Grouped bar chart: one group per key of ``groups`` (e.g. a metric), one bar per inner key (e.g. a model),
    missing values left out; None when there is nothing to draw."""
    series = sorted({name for values in groups.values() for name, v in values.items() if v is not None and v == v})
    if not series:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 1.6 * len(groups) * len(series) / 2), 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    width = 0.8 / len(series)
    for index, name in enumerate(series):
        xs, heights = [], []
        for position, values in enumerate(groups.values()):
            value = values.get(name)
            if value is not None and value == value:
                xs.append(position + (index - (len(series) - 1) / 2) * width)
                heights.append(value)
        bars = axis.bar(xs, heights, width, label=name)
        axis.bar_label(bars, fmt="%.2f", fontsize=7)
    axis.set_xticks(range(len(groups)), list(groups))
    axis.set(title=title, ylabel=ylabel)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out)
    return out


def render_markdown(
    folder: Path,
    *,
    title: str,
    intro: Sequence[str],
    rows: Sequence[Row],
    pictures: Sequence[Picture | Notes],
    footer: str,
) -> str:
    """The report as Markdown: title, intro, the table of rows, then each picture (relative to ``folder``) or
    block of notes, in order."""
    lines = [f"# {title}", "", *intro, "", "| stage | measure | value |", "|---|---|---|"]
    lines += [f"| {row.section} | {row.measure} | {row.shown} |" for row in rows]
    lines.append("")
    for picture in pictures:
        lines += [f"### {picture.title}", ""]
        if isinstance(picture, Notes):
            lines += [*picture.lines, ""] if picture.lines else ["(not produced in this run)", ""]
            continue
        if picture.path is None or not Path(picture.path).is_file():
            lines += ["(not produced in this run)", ""]
            continue
        relative = Path(picture.path).relative_to(folder).as_posix()
        lines += [picture.note, "", f"![{picture.title}]({relative})", ""]
    lines += [footer, ""]
    return "\n".join(lines)


def write_report(
    folder: Path,
    *,
    title: str,
    intro: Sequence[str],
    rows: Sequence[Row],
    pictures: Sequence[Picture | Notes],
    footer: str = "",
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``folder/REPORT.md`` and ``folder/summary.json`` (the rows, raw values and shown text, plus the
    caller's ``extra`` keys); atomic."""
    folder = Path(folder)
    report = atomic_write_text(
        folder / "REPORT.md",
        render_markdown(folder, title=title, intro=intro, rows=rows, pictures=pictures, footer=footer),
    )
    summary = atomic_write_json(
        folder / "summary.json",
        {
            "title": title,
            "rows": [
                {"section": row.section, "measure": row.measure, "value": _finite(row.value), "text": row.shown}
                for row in rows
            ],
            "pictures": {
                p.title: Path(p.path).relative_to(folder).as_posix() if p.path and Path(p.path).is_file() else None
                for p in pictures
                if isinstance(p, Picture)
            },
            **_finite(extra or {}),
        },
        default=str,
        allow_nan=False,
    )
    return report, summary


def _finite(value: Any) -> Any:
    """NaN/inf -> None, recursively (summary.json is strict JSON)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned console table between two rules."""
    width = max((len(f"{row.section} | {row.measure}") for row in rows), default=0)
    rule = "=" * (width + 20)
    body = [f"{row.section + ' | ' + row.measure:<{width}}  {row.shown}" for row in rows]
    return "\n".join(["", rule, *body, rule])
