"""Which class do pseudo-labels give each ground-truth object: a confusion matrix of 3D labels against ground truth.

A DIAGNOSTIC, not a recipe: it reads the ground truth of the split that was auto-labelled. In every frame, ground-truth
boxes within ``--max-range`` of the ego vehicle and label boxes are paired regardless of class, closest centres first
(< 2 m, the distance the benchmark scores at); each pair counts once under (true class, label class), each unpaired
ground-truth box under "missed". The median size, speed and score of each pair type say whether a confusion is the
teacher's box head (the size of the class it named) or the tracker's vote (the size of the true class). For pairs of
the right class, the label's speed and velocity error are split by whether the object stands still (ground-truth
speed < 0.2 m/s) or moves: a still object labelled with a speed is a refinement that did not hold it.

With ``--teacher CKPT`` the labels are the teacher's RAW per-frame output (the job's views, before any tracking;
cached as ``bench_refine_grid.py`` caches it), boxes scoring under ``--min-score`` dropped. The raw output holds
several overlapping boxes per object, so the pairing is the detection benchmark's: boxes in descending score, each
paired with the nearest unpaired ground-truth box within 2 m; so an object counts under the class of its
best-scored box nearby. Compared with the labels' matrix this says what the refinement had to work with.

    python benchmarks/diagnose_class_confusion.py PSEUDO_DIR CLIPS [--max-range 25] [--markdown OUT.md]
    python benchmarks/diagnose_class_confusion.py --teacher TEACHER.pt CLIPS [--min-score 0.05]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.diagnose_missed_objects import MATCH_DISTANCE  # noqa: E402
from perception.atomic import atomic_write_text  # noqa: E402
from perception.labels import Boxes3D, ClipLabels, LabelsError  # noqa: E402


def pair_regardless_of_class(
    labels: Boxes3D, truth: Boxes3D, max_range: float, by_score: bool = False
) -> tuple[list[tuple[int, int]], list[int]]:
    """(truth row, label row) pairs closer than MATCH_DISTANCE and the unpaired truth rows in range. Closest pairs
    first, or (``by_score``) label boxes in descending score, each taking its nearest free truth box."""
    near = np.flatnonzero(np.linalg.norm(truth.center[:, :2], axis=1) <= max_range)
    if len(near) == 0:
        return [], []
    if len(labels.class_id) == 0:
        return [], near.tolist()
    distance = np.linalg.norm(truth.center[near, None, :2] - labels.center[None, :, :2], axis=2)
    if by_score:  # column-major by descending score, nearest first within a column
        order = np.lexsort((distance.ravel(), np.broadcast_to(-labels.score[None, :], distance.shape).ravel()))
    else:
        order = np.argsort(distance, axis=None, kind="stable")
    pairs, used_truth, used_label = [], set(), set()
    for flat in order:
        row, col = divmod(int(flat), distance.shape[1])
        if distance[row, col] >= MATCH_DISTANCE:
            if by_score:
                continue
            break
        if row in used_truth or col in used_label:
            continue
        used_truth.add(row)
        used_label.add(col)
        pairs.append((int(near[row]), col))
    return pairs, [int(near[row]) for row in range(len(near)) if row not in used_truth]


STILL_SPEED = 0.2  # m/s: a ground-truth object slower than this stands still


def label_folder(pseudo: Path) -> Iterator[tuple[str, str, list[str], list[Boxes3D]]]:
    """(clip name, source, classes, per-frame boxes) of every ``<clip>/labels.json`` under ``pseudo``."""
    paths = sorted(pseudo.glob("*/labels.json"))
    if not paths:
        raise LabelsError(f"{pseudo}: no <clip>/labels.json")
    for path in paths:
        labels = ClipLabels.load(path)
        yield path.parent.name, str(path), list(labels.classes), [frame.boxes3d for frame in labels.frames]


def raw_teacher(
    teacher: str, clips: Path, job: Path, cache: Path, min_score: float
) -> Iterator[tuple[str, str, list[str], list[Boxes3D]]]:
    """(clip name, source, classes, per-frame boxes) of the teacher's raw output with the job's views, boxes scored
    >= min_score."""
    import yaml

    from benchmarks import bench_data_engine as engine
    from perception.labels import DRIVING_CLASSES

    views = engine.job_views(yaml.safe_load(job.read_text()))
    outputs = engine.teacher_outputs(Path(teacher), clips, views, cache)
    if not outputs:
        raise LabelsError(f"{clips}: no clips")
    for name, frames in outputs.items():
        source = f"{cache / name}: {teacher}'s raw output"
        yield name, source, list(DRIVING_CLASSES), [boxes[boxes.score >= min_score] for boxes in frames]


def confusion(
    labelled: Iterable[tuple[str, str, list[str], list[Boxes3D]]], clips: Path, max_range: float, by_score: bool = False
) -> tuple[list[str], np.ndarray, dict, dict]:
    """Counts (true class x label class, last column missed); per pair type the label's size, speed and score; per
    (class, still) the right-class pairs' label speed and velocity error."""
    classes: list[str] | None = None
    counts = None
    details: dict[tuple[int, int], list[np.ndarray]] = defaultdict(list)
    motion: dict[tuple[int, bool], list[tuple[float, float]]] = defaultdict(list)
    for name, source, label_classes, label_frames in labelled:
        truth = ClipLabels.load(clips / name / "labels.json")
        if truth.classes != label_classes or len(truth.frames) != len(label_frames):
            raise LabelsError(
                f"{source}: classes or frame count ({label_classes}, {len(label_frames)} frames) differ from "
                f"{clips / name}'s ground truth ({truth.classes}, {len(truth.frames)} frames)"
            )
        if classes is None:
            classes, counts = list(label_classes), np.zeros((len(label_classes), len(label_classes) + 1), int)
        for found, truth_frame in zip(label_frames, truth.frames):
            truth_boxes = truth_frame.boxes3d
            pairs, missed = pair_regardless_of_class(found, truth_boxes, max_range, by_score)
            for row, col in pairs:
                key = (int(truth_boxes.class_id[row]), int(found.class_id[col]))
                counts[key] += 1
                speed = float(np.linalg.norm(found.velocity[col, :2]))
                details[key].append(np.concatenate([found.size[col], [speed, found.score[col]]]))
                if key[0] == key[1]:
                    true_velocity = truth_boxes.velocity[row, :2]
                    still = bool(np.linalg.norm(true_velocity) < STILL_SPEED)
                    error = float(np.linalg.norm(found.velocity[col, :2] - true_velocity))
                    motion[key[0], still].append((speed, error))
            for row in missed:
                counts[int(truth_boxes.class_id[row]), -1] += 1
    if classes is None:
        raise LabelsError("no <clip>/labels.json to compare")
    medians = {key: np.median(np.stack(rows), axis=0) for key, rows in details.items()}
    return classes, counts, medians, {key: np.asarray(rows) for key, rows in motion.items()}


def markdown(classes: list[str], counts: np.ndarray, medians: dict, motion: dict, min_pairs: int = 20) -> str:
    lines = ["| ground truth \\ label | " + " | ".join(classes) + " | missed |", "|---" * (len(classes) + 2) + "|"]
    lines += [f"| {name} | " + " | ".join(str(v) for v in counts[i]) + " |" for i, name in enumerate(classes)]
    lines += [
        "",
        "| true class | label class | pairs | label size l x w x h (m), median | speed (m/s) | score |",
        "|---|---|---|---|---|---|",
    ]
    for (true, found), median in sorted(medians.items()):
        if counts[true, found] >= min_pairs:
            size = " x ".join(f"{v:.2f}" for v in median[:3])
            pair = f"| {classes[true]} | {classes[found]} | {counts[true, found]}"
            lines.append(f"{pair} | {size} | {median[3]:.2f} | {median[4]:.2f} |")
    lines += [
        "",
        "| class | ground truth | pairs | label speed (m/s), median | velocity error (m/s): median / mean |",
        "|---|---|---|---|---|",
    ]
    for (index, still), rows in sorted(motion.items(), key=lambda item: (item[0][0], not item[0][1])):
        speed, error = np.median(rows, axis=0)
        state = "still" if still else "moving"
        lines.append(
            f"| {classes[index]} | {state} | {len(rows)} | {speed:.2f} | {error:.2f} / {rows[:, 1].mean():.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", type=Path, nargs="+", help="PSEUDO_DIR CLIPS, or CLIPS alone with --teacher")
    parser.add_argument("--teacher", help="pair the teacher's raw per-frame output instead (A.pt,B.pt: an ensemble)")
    parser.add_argument("--min-score", type=float, default=0.05, help="with --teacher: drop raw boxes under it")
    parser.add_argument("--job", type=Path, default=REPO / "configs/autolabel/jobs/fleetvision_offline.yaml")
    parser.add_argument("--cache", type=Path, help="with --teacher: its output cache (default runs/refine_grid/...)")
    parser.add_argument("--max-range", type=float, default=25.0, help="metres from the ego vehicle (default 25)")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_intermixed_args(argv)
    if len(args.paths) != (1 if args.teacher else 2):
        parser.error("expected PSEUDO_DIR CLIPS, or --teacher TEACHER CLIPS")
    clips = args.paths[-1]
    try:
        if args.teacher:
            from benchmarks.bench_refine_grid import default_cache

            cache = args.cache or default_cache(args.teacher)
            labelled = raw_teacher(args.teacher, clips, args.job, cache / clips.resolve().name, args.min_score)
        else:
            labelled = label_folder(args.paths[0])
        text = markdown(*confusion(labelled, clips, args.max_range, by_score=bool(args.teacher)))
    except (LabelsError, OSError) as error:
        print(f"diagnose_class_confusion: {error}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.markdown:
        atomic_write_text(args.markdown, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
