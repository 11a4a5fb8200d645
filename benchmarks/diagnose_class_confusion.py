"""Which class do pseudo-labels give each ground-truth object: a confusion matrix of 3D labels against ground truth.

A DIAGNOSTIC, not a recipe: it reads the ground truth of the split that was auto-labelled. In every frame, ground-truth
boxes within ``--max-range`` of the ego vehicle and label boxes are paired regardless of class, closest centres first
(< 2 m, the distance the benchmark scores at); each pair counts once under (true class, label class), each unpaired
ground-truth box under "missed". The median size, speed and score of each pair type say whether a confusion is the
teacher's box head (the size of the class it named) or the tracker's vote (the size of the true class). For pairs of
the right class, the label's speed and velocity error are split by whether the object stands still (ground-truth
speed < 0.2 m/s) or moves: a still object labelled with a speed is a refinement that did not hold it.

    python benchmarks/diagnose_class_confusion.py PSEUDO_DIR CLIPS [--max-range 25] [--markdown OUT.md]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.diagnose_missed_objects import MATCH_DISTANCE  # noqa: E402
from perception.atomic import atomic_write_text  # noqa: E402
from perception.labels import Boxes3D, ClipLabels, LabelsError  # noqa: E402


def pair_regardless_of_class(
    labels: Boxes3D, truth: Boxes3D, max_range: float
) -> tuple[list[tuple[int, int]], list[int]]:
    """(truth row, label row) pairs closer than MATCH_DISTANCE, closest first, and the unpaired truth rows in range."""
    near = np.flatnonzero(np.linalg.norm(truth.center[:, :2], axis=1) <= max_range)
    if len(near) == 0:
        return [], []
    if len(labels.class_id) == 0:
        return [], near.tolist()
    distance = np.linalg.norm(truth.center[near, None, :2] - labels.center[None, :, :2], axis=2)
    pairs, used_truth, used_label = [], set(), set()
    for flat in np.argsort(distance, axis=None, kind="stable"):
        row, col = divmod(int(flat), distance.shape[1])
        if distance[row, col] >= MATCH_DISTANCE:
            break
        if row in used_truth or col in used_label:
            continue
        used_truth.add(row)
        used_label.add(col)
        pairs.append((int(near[row]), col))
    return pairs, [int(near[row]) for row in range(len(near)) if row not in used_truth]


STILL_SPEED = 0.2  # m/s: a ground-truth object slower than this stands still


def confusion(pseudo: Path, clips: Path, max_range: float) -> tuple[list[str], np.ndarray, dict, dict]:
    """Counts (true class x label class, last column missed); per pair type the label's size, speed and score; per
    (class, still) the right-class pairs' label speed and velocity error."""
    classes: list[str] | None = None
    counts = None
    details: dict[tuple[int, int], list[np.ndarray]] = defaultdict(list)
    motion: dict[tuple[int, bool], list[tuple[float, float]]] = defaultdict(list)
    for path in sorted(pseudo.glob("*/labels.json")):
        labels = ClipLabels.load(path)
        truth = ClipLabels.load(clips / path.parent.name / "labels.json")
        if truth.classes != labels.classes or len(truth.frames) != len(labels.frames):
            raise LabelsError(f"{path}: classes or frame count differ from {clips / path.parent.name}'s ground truth")
        if classes is None:
            classes, counts = list(labels.classes), np.zeros((len(labels.classes), len(labels.classes) + 1), int)
        for label_frame, truth_frame in zip(labels.frames, truth.frames):
            found, truth_boxes = label_frame.boxes3d, truth_frame.boxes3d
            pairs, missed = pair_regardless_of_class(found, truth_boxes, max_range)
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
        raise LabelsError(f"{pseudo}: no <clip>/labels.json")
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
    parser.add_argument("pseudo", type=Path, help="label folder (<clip>/labels.json)")
    parser.add_argument("clips", type=Path, help="the labelled clips those labels were made for")
    parser.add_argument("--max-range", type=float, default=25.0, help="metres from the ego vehicle (default 25)")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    try:
        text = markdown(*confusion(args.pseudo, args.clips, args.max_range))
    except (LabelsError, OSError) as error:
        print(f"diagnose_class_confusion: {error}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.markdown:
        atomic_write_text(args.markdown, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
