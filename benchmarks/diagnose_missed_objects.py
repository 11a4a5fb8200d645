"""What the teacher's missed objects cost a student: pseudo-labels plus the ground-truth objects they miss.

A DIAGNOSTIC, not a recipe: it reads the ground truth of the split that was auto-labelled. Each ground-truth 3D box that
no pseudo-label box matches (same class, centres < 2 m apart, greedy by pseudo score) is appended to that frame's
pseudo-labels, either as an object (``--as object``: score 1, projected into the cameras like the others) or as an
ignore region (``--as ignore``: score 0; train with ``--data.train_labels_ignore_below=0.01`` so it is neither object
nor background). Train student B on the result (``--data.train_labels='{U: OUT}'``) and compare it with B on the plain
pseudo-labels and with the oracle: the first difference is what the missed objects cost as background, the second
what they cost as absent positives (``results/data_engine_soft_labels.md``).

    python benchmarks/diagnose_missed_objects.py PSEUDO_DIR U_CLIPS OUT_DIR --as object|ignore
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from autolabel.tracking3d import project_boxes_to_cameras  # noqa: E402
from perception.clip import ClipError, DriveClip  # noqa: E402
from perception.labels import Boxes3D, ClipLabels, FrameLabels, LabelsError, make_provenance  # noqa: E402

MATCH_DISTANCE = 2.0  # metres, the nuScenes centre distance the benchmark scores at


def unmatched(pseudo: Boxes3D, truth: Boxes3D) -> np.ndarray:
    """Mask over ``truth``: boxes no pseudo box of the same class claims within MATCH_DISTANCE (greedy by score)."""
    taken = np.zeros(len(truth), bool)
    for row in np.argsort(-pseudo.score, kind="stable"):
        free = np.flatnonzero((truth.class_id == pseudo.class_id[row]) & ~taken)
        if len(free):
            distance = np.linalg.norm(truth.center[free, :2] - pseudo.center[row, :2], axis=1)
            if distance.min() < MATCH_DISTANCE:
                taken[free[np.argmin(distance)]] = True
    return ~taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pseudo", type=Path, help="pseudo-label folder (<clip>/labels.json)")
    parser.add_argument("clips", type=Path, help="the labelled clips those pseudo-labels were made for")
    parser.add_argument("out", type=Path, help="folder to write <clip>/labels.json to")
    parser.add_argument("--as", dest="mode", choices=("object", "ignore"), required=True)
    args = parser.parse_args(argv)
    added = total = 0
    for path in sorted(args.pseudo.glob("*/labels.json")):
        try:
            labels, clip = ClipLabels.load(path), DriveClip.open(args.clips / path.parent.name)
        except (ClipError, LabelsError, OSError) as error:
            print(f"diagnose_missed_objects: {error}", file=sys.stderr)
            return 2
        truth_labels = clip.labels
        same = truth_labels is not None and truth_labels.classes == labels.classes
        if not same or len(truth_labels.frames) != len(labels.frames):
            print(f"{path}: no matching ground truth in {args.clips / path.parent.name}", file=sys.stderr)
            return 2
        frames = []
        for index, (mine, truth) in enumerate(zip(labels.frames, truth_labels.frames)):
            missed = truth.boxes3d[unmatched(mine.boxes3d, truth.boxes3d)]  # a copy
            missed.score[:] = 1.0 if args.mode == "object" else 0.0
            missed.track_id[:] = -1
            added, total = added + len(missed), total + len(truth.boxes3d)
            boxes = Boxes3D.concat([mine.boxes3d, missed])
            shown = boxes if args.mode == "object" else mine.boxes3d  # ignore regions get no 2D box
            frames.append(FrameLabels(boxes3d=boxes, boxes2d=project_boxes_to_cameras(shown, clip, index)))
        (args.out / path.parent.name).mkdir(parents=True, exist_ok=True)
        provenance = make_provenance("diagnose_missed_objects", Path(__file__).name, added_as=args.mode)
        ClipLabels(labels.classes, frames, provenance).save(args.out / path.parent.name / "labels.json")
    print(f"added {added} of {total} ground-truth boxes as {args.mode}s to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
