"""``perception report DEMO_DIR``: one summary table and ``REPORT.md`` (with pictures) for a ``make demo`` run.

It only reads what the stages wrote (JSON, CSV, PNG, MP4); it runs nothing and imports neither torch,
autolabel nor deploy. A missing stage shows as "n/a" instead of failing, so a partial run still reports.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from perception.atomic import atomic_write_text


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _get(data: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(data, (dict, list)):
            return None
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}f}"
    return str(value)


def _car_ap(metrics: dict | None, threshold: str = "2.0") -> float | None:
    return _get(metrics, "bev_detection", "per_class", "car", "ap", threshold)


def summary_rows(demo: Path) -> list[tuple[str, str, str]]:
    """(section, measure, value) rows of the demo's headline figures."""
    rows: list[tuple[str, str, str]] = []
    pseudo = _load(demo / "eval" / "pseudo_labels.json")
    rows.append(
        ("pseudo-labels", "BEV mAP vs ground truth (unlabelled split)", _fmt(_get(pseudo, "overall", "bev", "mAP")))
    )
    rows.append(("pseudo-labels", "BEV NDS", _fmt(_get(pseudo, "overall", "bev", "NDS"))))
    rows.append(
        ("pseudo-labels", "2D AP50 (projected into the cameras)", _fmt(_get(pseudo, "overall", "det2d", "AP50")))
    )
    students = {name: _load(demo / "eval" / f"student_{name}.json") for name in ("pseudo", "gt")}
    for name, label in (("pseudo", "student on pseudo-labels"), ("gt", "student on ground truth")):
        metrics = students[name]
        rows.append((label, "BEV mAP (validation split)", _fmt(_get(metrics, "bev_detection", "mAP"))))
        rows.append((label, "car AP @ 2 m", _fmt(_car_ap(metrics))))
    pseudo_map, gt_map = (_get(students[n], "bev_detection", "mAP") for n in ("pseudo", "gt"))
    ratio = pseudo_map / gt_map if pseudo_map is not None and gt_map else None
    rows.append(("students", "pseudo / ground-truth BEV mAP (target >= 0.90)", _fmt(ratio)))
    parity = _load(demo / "deploy" / "parity.json")
    worst = max((o.get("max_abs") or 0.0 for o in _get(parity, "outputs") or []), default=None)
    rows.append(("export", "ONNX Runtime vs PyTorch parity passed", _fmt(_get(parity, "passed"))))
    rows.append(("export", "largest max-abs error over outputs", _fmt(worst, 6)))
    accuracy = _load(demo / "deploy" / "student.int8.accuracy.json")
    metric = _get(accuracy, "primary_metric")
    rows.append(("INT8", f"accuracy retained ({metric})", _fmt(_get(accuracy, "retained"))))
    rows.append(("INT8", ">= 99% of FP32 (MLPerf rule)", _fmt(_get(accuracy, "meets_mlperf_99"))))
    bench = _load(demo / "bench" / "bench.json")
    for row in _get(bench, "table") or []:
        rows.append(
            (
                "latency",
                f"{row['variant']} p50 / p99 ms, 20 Hz budget",
                f"{_fmt(row.get('p50_ms'), 1)} / {_fmt(row.get('p99_ms'), 1)}, {row.get('budget', 'n/a')}",
            )
        )
    run = _load(demo / "run" / "summary.json")
    rows.append(
        (
            "runtime",
            "frames processed / dropped (%)",
            f"{_fmt(_get(run, 'frames_processed'))} / {_fmt(_get(run, 'drop_percent'), 1)}",
        )
    )
    rows.append(("runtime", "deadline misses", _fmt(_get(run, "deadline_misses"))))
    recordings = viewer_recordings(demo)
    rows.append(("viewers", "Rerun / Foxglove recordings (viewers/)", ", ".join(p.name for p in recordings) or "n/a"))
    rows.append(
        (
            "runtime",
            "sensor-to-output p50 / p99 ms",
            f"{_fmt(_get(run, 'stages_ms', 'sensor_to_output', 'p50'), 1)} / "
            f"{_fmt(_get(run, 'stages_ms', 'sensor_to_output', 'p99'), 1)}",
        )
    )
    return rows


def viewer_recordings(demo: Path) -> list[Path]:
    """The Rerun (.rrd) and Foxglove (.mcap) files the demo's viewers stage wrote."""
    folder = demo / "viewers"
    return sorted([*folder.glob("*.rrd"), *folder.glob("*.mcap")]) if folder.is_dir() else []


def _viewer_lines(demo: Path) -> list[str]:
    lines = ["### Open the clips in Rerun and Foxglove", ""]
    recordings = viewer_recordings(demo)
    if not recordings:
        return [*lines, "(not produced in this run)", ""]
    lines += [
        "An auto-labelled clip with its ground truth and pseudo-labels (`perception export rerun|foxglove`): cameras",
        "as pinholes under their capture-time poses, images, 3D boxes with class and track id, 2D boxes, BEV maps,",
        "the ego trajectory.",
        "",
    ]
    for path in recordings:
        opener = (
            f"`rerun {path.as_posix()}`" if path.suffix == ".rrd" else "Foxglove: open local file (3D + Image panels)"
        )
        lines.append(f"- `{path.relative_to(demo).as_posix()}` ({path.stat().st_size / 1e6:.1f} MB): {opener}")
    return [*lines, ""]


def _latest(pattern: str, root: Path) -> Path | None:
    found = sorted(root.glob(pattern), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def plot_training_curves(demo: Path, out: Path) -> Path | None:
    """Training loss (and validation mAP) of the teacher and both students in one picture."""
    runs = {
        name: _latest("logs/*/csv/metrics.csv", demo / name) for name in ("teacher", "student_pseudo", "student_gt")
    }
    runs = {name: path for name, path in runs.items() if path is not None}
    if not runs:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    loss_axis, map_axis = figure.subplots(1, 2)
    for name, path in runs.items():
        with path.open() as stream:
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


def video_frame(video: Path, out: Path, fraction: float = 0.5) -> Path | None:
    """Save one frame (at ``fraction`` of the length) of a video as PNG."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if count <= 0:
        return None
    capture.set(cv2.CAP_PROP_POS_FRAMES, int(count * fraction))
    ok, frame = capture.read()
    capture.release()
    return out if ok and cv2.imwrite(str(out), frame) else None


def write_report(demo: Path) -> tuple[Path, list[tuple[str, str, str]]]:
    """Write ``DEMO/REPORT.md`` and its pictures; return the path and the summary rows."""
    pictures = demo / "report"
    pictures.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(demo)
    curves = plot_training_curves(demo, pictures / "training_curves.png")
    runtime_frame = video_frame(demo / "run" / "annotated.mp4", pictures / "runtime_frame.png")
    dashcam = _latest("**/preview.mp4", demo / "dashcam") if (demo / "dashcam").is_dir() else None
    dashcam_frame = video_frame(dashcam, pictures / "dashcam_frame.png") if dashcam else None

    def picture(title: str, path: Path | None, note: str = "") -> list[str]:
        if path is None or not path.is_file():
            return [f"### {title}", "", "(not produced in this run)", ""]
        return [f"### {title}", "", note, "", f"![{title}]({path.relative_to(demo).as_posix()})", ""]

    lines = [
        "# fleetvision demo report",
        "",
        "The whole loop on the embedded synthetic world: synthesise -> train the teacher -> auto-label the unlabelled",
        "split -> train students on pseudo-labels and on ground truth -> evaluate -> export, quantize, benchmark ->",
        "replay through the in-vehicle runtime. Every figure below was measured by this run (`make demo`).",
        "",
        "| stage | measure | value |",
        "|---|---|---|",
        *[f"| {section} | {measure} | {value} |" for section, measure, value in rows],
        "",
        *picture(
            "Pseudo-labels vs ground truth",
            demo / "pseudo_vs_gt.png",
            "Camera mosaic and bird's-eye view of an unlabelled clip: ground truth solid, pseudo-labels dashed.",
        ),
        *picture("Training curves", curves),
        *picture(
            "Latency against the 20 Hz budget",
            demo / "bench" / "bench_latency.png",
            "Histogram and CDF of single-query latency per variant; the budget is drawn as a line.",
        ),
        *picture(
            "The runtime's annotated output",
            runtime_frame,
            "A frame of `deploy run` replaying a validation clip at 20 Hz.",
        ),
        *picture("Real dash-cam video auto-labelled with YOLOX-Nano", dashcam_frame),
        *_viewer_lines(demo),
        "Detailed reports: `bench/bench.md`, `deploy/student.int8.accuracy.md`, `run/summary.json`, `eval/*.json`.",
        "",
    ]
    report = demo / "REPORT.md"
    atomic_write_text(report, "\n".join(lines))
    return report, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="perception report", description=__doc__.splitlines()[0])
    parser.add_argument("demo_dir", type=Path, help="the folder of a make demo run (e.g. runs/demo)")
    args = parser.parse_args(argv)
    if not args.demo_dir.is_dir():
        parser.error(f"{args.demo_dir}: not a folder")
    report, rows = write_report(args.demo_dir)
    width = max(len(f"{s} | {m}") for s, m, _ in rows)
    print("\n" + "=" * (width + 20))
    for section, measure, value in rows:
        print(f"{section + ' | ' + measure:<{width}}  {value}")
    print("=" * (width + 20))
    print(f"wrote {report}")
    return 0
