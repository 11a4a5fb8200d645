"""``autolabel`` command line: label a folder tree of videos / image folders / drive clips, evaluate, review.

Usage::

    autolabel VIDEO_DIR --out LABEL_DIR [-c JOB.yaml] [--teacher PATH_OR_SPEC] [--section.key=value ...]
              [--workers K] [--batch_size B] [--preview] [--print_config]
    autolabel eval LABEL_DIR --gt GT_DIR_OR_CLIPS [--out metrics.json]
    autolabel calibrate LABEL_DIR --gt GT_DIR --out floors.yaml [--max-range M] [--score-calibration FILE]
    autolabel calibrate LABEL_DIR --gt GT_DIR --out track.yaml --track-score [--gt-class NAME]
    autolabel calibrate LABEL_DIR --gt GT_DIR --out lifting.yaml --lifting [--max-range M]
    autolabel review LABEL_DIR [--top N] [--out DIR] [--no-pictures]

The job config (``-c``, sections teacher/classes/refine/tracking3d/export/...) is jsonargparse, like ``perception
fit``: constructor arguments (``class_path``/``init_args``), ``--print_config`` prints the resolved config,
``--refine.min_length=5`` / ``--teacher.score_floor=0.1`` override one value; see ``autolabel.jobconfig``.
The resolved config is saved as ``LABEL_DIR/config.yaml``.

Teachers: YOLOX ONNX and torchvision detectors (2D, COCO classes mapped to the driving classes) label each camera
on its own: on a multi-camera clip the same object seen by two cameras gets two track ids (2D-only limitation).
A fleetvision BEV checkpoint labels multi-camera clips in 3D: one box per object, tracked in the world frame, with
2D boxes projected into every camera under the same track id.

Exit codes (``perception.errors``, the same for the three tools): 0 success; 1 the run failed (nothing could be
written, another job holds LABEL_DIR, an unexpected error); 2 bad input: command line, job config, teacher weights,
input folder (one line naming the file and field); 3 some inputs failed (listed with reasons in
LABEL_DIR/failures.json, the rest are labelled). ``--debug`` prints the traceback of an unexpected error.
(A folder literally named ``eval`` or ``review`` is passed as ``./eval``.)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from perception.errors import EXIT_BAD_INPUT, cli_boundary
from perception.labels import ClipLabels

__all__ = ["build_parser", "main"]


def build_parser() -> Any:
    """The labelling parser (jsonargparse): run options plus the job sections of ``autolabel.jobconfig``."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    from autolabel.jobconfig import add_job_arguments

    parser = ArgumentParser(
        prog="autolabel",
        description="Auto-label a folder tree: plain videos (.mp4/.avi/.mov/.mkv/.webm) and image-sequence folders "
        "become single-camera clips, drive-clip folders (rig.yaml + frames.csv) stay multi-camera. "
        "Subcommands: 'autolabel eval LABEL_DIR --gt GT', 'autolabel review LABEL_DIR --top N'. "
        "Exit code 3: some inputs failed (see LABEL_DIR/failures.json).",
        exit_on_error=False,
        print_config=None,
        default_env=False,
    )
    parser.add_argument(
        "video_dir", type=Path | None, nargs="?", default=None, help="folder to walk (or one video file / clip folder)"
    )
    parser.add_argument("--out", type=Path | None, default=None, help="label folder (required); mirrors the input tree")
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="job YAML, e.g. configs/autolabel/jobs/*.yaml")
    parser.add_argument("--print_config", action="store_true", help="print the resolved job config and exit")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes (Lightning DDP on CPU/gloo) sharding the clips"
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step (INFO)")
    add_job_arguments(parser)
    return parser


def _eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autolabel eval",
        description="Score pseudo-labels against ground truth: COCO AP, HOTA (DetA, AssA), MOTA, IDF1 per class and "
        "camera (TrackEval's figures), BEV mAP/NDS for 3D labels.",
    )
    parser.add_argument("label_dir", type=Path, help="label folder written by autolabel")
    parser.add_argument(
        "--gt",
        type=Path,
        required=True,
        help="ground truth: a tree of clips with labels.json and/or MOTChallenge sequences (gt/gt.txt)",
    )
    parser.add_argument("--out", type=Path, default=None, help="metrics JSON (default LABEL_DIR/metrics.json)")
    parser.add_argument("--gt-class", default="pedestrian", help="class name of MOTChallenge ground truth")
    parser.add_argument(
        "--max-range",
        type=float,
        default=None,
        help="3D evaluation only within this BEV distance of the ego (metres), e.g. the teacher's grid half-width",
    )
    return parser


def _calibrate_parser() -> argparse.ArgumentParser:
    from autolabel.calibrate import FEW_OBJECTS

    parser = argparse.ArgumentParser(
        prog="autolabel calibrate",
        description="Per-class score floors for 3D pseudo-labels, chosen on a labelled split (F1-best at 2 m), or "
        "with --track-score the 2D chain's refine.min_track_score (best mean of HOTA, IDF1 and MOTA), or with "
        "--lifting the bottom-edge offset and class sizes the 3D boxes of multi-camera 2D labels rest on; writes a "
        "job-config fragment to pass as a second -c when labelling unlabelled data.",
    )
    parser.add_argument("label_dir", type=Path, help="labels of a split WITH ground truth, made without floors")
    parser.add_argument("--gt", type=Path, required=True, help="the ground-truth clips of that split")
    parser.add_argument("--out", type=Path, required=True, help="job-config fragment to write (YAML)")
    parser.add_argument("--max-range", type=float, default=None, help="score only within this BEV distance (m)")
    parser.add_argument("--min-gt", type=int, default=20, help="classes with fewer ground-truth boxes get no floor")
    parser.add_argument(
        "--min-objects",
        type=int,
        default=FEW_OBJECTS,
        help=f"classes whose boxes belong to fewer distinct objects get no floor (default {FEW_OBJECTS}; 0 keeps them)",
    )
    parser.add_argument(
        "--score-calibration",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write each class's precision as a function of the score (YAML), for soft pseudo-labels: "
        "perception fit ... --data.train_labels_quality=FILE",
    )
    parser.add_argument(
        "--track-score",
        action="store_true",
        help="2D teachers: choose refine.min_track_score instead (label the split with --refine.min_track_score=0 "
        "--refine.output_score=track first)",
    )
    parser.add_argument(
        "--lifting",
        action="store_true",
        help="multi-camera clips labelled by a 2D teacher: measure multicam.bottom_offset_px and "
        "multicam.size_priors_m instead (label the split with the association on first)",
    )
    parser.add_argument(
        "--gt-class", default="pedestrian", help="--track-score: the label class MOTChallenge ground truth is scored as"
    )
    return parser


def _run_calibrate_track_score(args: argparse.Namespace) -> int:
    from autolabel.calibrate import choose_track_score, track_score_curve, track_score_document
    from perception.atomic import atomic_write_text

    try:
        curve = track_score_curve(args.label_dir, args.gt, gt_class=args.gt_class)
        chosen = choose_track_score(curve)
    except (FileNotFoundError, ValueError) as error:
        print(f"autolabel calibrate: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for entry in curve:
        mark = "  <- chosen" if entry is chosen else ""
        print(
            f"min_track_score {entry['threshold']:.2f}  HOTA {entry['HOTA']:5.1f}  IDF1 {entry['IDF1']:5.1f}  "
            f"MOTA {entry['MOTA']:5.1f}  tracks {entry['tracks']}{mark}"
        )
    atomic_write_text(args.out, track_score_document(chosen, curve, source=str(args.gt)))
    print(f"refine.min_track_score {chosen['threshold']:.2f} written to {args.out}")
    return 0


def _run_calibrate_lifting(args: argparse.Namespace) -> int:
    from autolabel.calibrate import lifting_calibration, lifting_document
    from perception.atomic import atomic_write_text

    try:
        result = lifting_calibration(args.label_dir, args.gt, max_range=args.max_range, min_objects=args.min_objects)
    except (FileNotFoundError, ValueError) as error:
        print(f"autolabel calibrate: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    q1, q3 = result["offset_quartiles"]
    print(
        f"bottom_offset_px {result['bottom_offset_px']:+.2f} (quartiles {q1:+.2f} / {q3:+.2f}, "
        f"{result['offset_boxes']} boxes)"
    )
    for name, entry in result["sizes"].items():
        note = "" if entry["measured"] else f"  (< {args.min_objects} objects: default kept)"
        size = " x ".join(f"{v:.2f}" for v in entry["size"])
        print(f"{name:14s} {size} m over {entry['objects']} objects{note}")
    atomic_write_text(args.out, lifting_document(result, source=str(args.gt)))
    print(f"lifting settings written to {args.out}")
    return 0


def _run_calibrate(argv: Sequence[str]) -> int:
    from autolabel.calibrate import (
        calibration_document,
        floors_document,
        measure_labels,
        score_calibration,
        set_floors_by_objects,
    )
    from perception.atomic import atomic_write_text

    args = _calibrate_parser().parse_args(argv)
    if args.track_score and args.lifting:
        print("autolabel calibrate: --track-score and --lifting: expected one of them, found both", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.track_score:
        return _run_calibrate_track_score(args)
    if args.lifting:
        return _run_calibrate_lifting(args)
    try:  # the labels are read and matched once, for the floors and the score calibration
        evaluator, objects = measure_labels(args.label_dir, args.gt, max_range=args.max_range)
    except (FileNotFoundError, ValueError) as error:
        print(f"autolabel calibrate: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    floors = set_floors_by_objects(evaluator.score_floors(min_gt=args.min_gt), objects, args.min_objects)
    atomic_write_text(args.out, floors_document(floors, source=str(args.gt)))
    if args.score_calibration is not None:
        curves = score_calibration(evaluator, objects, min_gt=args.min_gt, min_objects=args.min_objects)
        atomic_write_text(args.score_calibration, calibration_document(curves, source=str(args.gt)))
        pooled = [name for name, entry in curves.items() if entry.get("uses")]
        fallback = f" ({', '.join(pooled)}: the pooled curve)" if pooled else ""
        print(f"score calibration written to {args.score_calibration}{fallback}")
    for name, entry in floors.items():
        objects = f" of {entry['num_objects']} objects" if entry["num_objects"] is not None else ""
        figures = (
            f"precision {entry['precision']:.3f}  recall {entry['recall']:.3f}  "
            f"({entry['num_gt']} ground-truth boxes{objects})"
        )
        if not entry["few_objects"]:
            print(f"{name:14s} floor {entry['floor']:.3f}  {figures}")
        else:
            print(f"{name:14s} no floor     (the best, {entry['floor_found']:.3f}: {figures})")
            print(
                f"warning: no {name} floor: the best one ({entry['floor_found']:.3f}) was chosen on "
                f"{entry['num_objects']} object(s), fewer than {args.min_objects}; calibrate on more labelled clips "
                "(or --min-objects 0 to keep it)",
                file=sys.stderr,
            )
    print(f"floors written to {args.out}")
    return 0


def _review_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autolabel review", description="Most uncertain frames first, with pictures.")
    parser.add_argument("label_dir", type=Path, help="label folder written by autolabel")
    parser.add_argument("--top", type=int, default=20, help="how many frames to list")
    parser.add_argument("--out", type=Path, default=None, help="review folder (default LABEL_DIR/review)")
    parser.add_argument(
        "--inputs", type=Path, default=None, help="input root when labels were moved (default: recorded)"
    )
    parser.add_argument("--no-pictures", action="store_true", help="list the frames, draw no pictures")
    return parser


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autolabel export",
        description="Write a training dataset (YOLO: images/ + labels/ + data.yaml; COCO: "
        "annotations/instances_*.json) of a label folder, frames as JPEG, split train/val by clip. The frames are "
        "read from the inputs the labels were made from (the job's input root, or --inputs).",
    )
    parser.add_argument("label_dir", type=Path, help="label folder (autolabel output, or import-cvat ground truth)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write (replaced atomically)")
    parser.add_argument(
        "--format", nargs="+", choices=["yolo", "coco"], default=["yolo", "coco"], help="dataset formats to write"
    )
    parser.add_argument("--val-fraction", type=float, default=0.2, help="fraction of the clips used for validation")
    parser.add_argument("--every", type=int, default=1, help="keep every n-th frame of videos and clips")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the written frames (1-100)")
    parser.add_argument(
        "--inputs", type=Path, default=None, help="input root when the inputs moved (default: LABEL_DIR/job.json)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _run_export(argv: Sequence[str]) -> int:
    from autolabel.exporters.dataset import write_dataset

    args = _export_parser().parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(message)s")
    try:
        summary = write_dataset(
            args.label_dir, args.out, formats=args.format, val_fraction=args.val_fraction, input_root=args.inputs,
            every=args.every, jpeg_quality=args.quality, progress=not args.no_progress, reuse=False,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as error:
        print(f"autolabel export: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"autolabel export: {summary.images['train']} train images ({len(summary.items['train'])} clips), "
        f"{summary.images['val']} val images ({len(summary.items['val'])} clips) -> {summary.out}"
    )
    if "yolo" in args.format:
        print(f"  yolo train data={summary.out / 'data.yaml'}")
    for name, reason in summary.skipped.items():
        print(f"  skipped {name}: {reason}", file=sys.stderr)
    return 3 if summary.skipped else 0


def _import_cvat_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autolabel import-cvat",
        description="Read corrected CVAT XML (for video 1.1 or for images 1.1; one file per camera) back into a "
        "labels.json with ground-truth provenance, for 'autolabel eval --gt', 'autolabel export' and training.",
    )
    parser.add_argument(
        "xml", type=Path, nargs="+", help="CVAT XML files (autolabel writes LABELS/<clip>/cvat/<cam>.xml)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for labels.json, e.g. GT/<clip>")
    parser.add_argument(
        "--input",
        type=Path,
        default=None,
        help="the video, clip or image folder the task annotates (checked, recorded)",
    )
    parser.add_argument("--camera", nargs="+", default=None, help="camera name of each XML (default: file names)")
    parser.add_argument(
        "--classes", nargs="+", default=None, help="class order of the output (default: CVAT's label order)"
    )
    return parser


def _run_import_cvat(argv: Sequence[str]) -> int:
    from autolabel.corrections import import_cvat

    args = _import_cvat_parser().parse_args(argv)
    try:
        path = import_cvat(args.xml, args.out, input_path=args.input, cameras=args.camera, classes=args.classes)
    except (FileNotFoundError, ValueError) as error:
        print(f"autolabel import-cvat: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    labels = ClipLabels.load(path)
    boxes = sum(len(b) for f in labels.frames for b in f.boxes2d.values())
    print(f"autolabel import-cvat: {boxes} boxes over {len(labels.frames)} frames, classes {labels.classes} -> {path}")
    return 0


def _run_eval(argv: Sequence[str]) -> int:
    from autolabel.evaluate import evaluate_labels, format_metrics

    args = _eval_parser().parse_args(argv)
    try:
        metrics = evaluate_labels(args.label_dir, args.gt, gt_class=args.gt_class, max_range=args.max_range)
    except (FileNotFoundError, ValueError) as error:
        print(f"autolabel eval: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = args.out or args.label_dir / "metrics.json"
    from perception.atomic import atomic_write_json

    atomic_write_json(out, metrics)
    print(format_metrics(metrics))
    print(f"metrics written to {out}")
    return 0


def _run_review(argv: Sequence[str]) -> int:
    from autolabel.review import build_review

    args = _review_parser().parse_args(argv)
    items = build_review(
        args.label_dir, top=args.top, out_dir=args.out, input_root=args.inputs, pictures=not args.no_pictures
    )
    for rank, item in enumerate(items, start=1):
        picture = item.get("picture") or "-"
        print(
            f"{rank:3d}  {item['uncertainty']:.3f}  {item['clip']}  frame {item['frame']}  boxes {item['boxes']}  "
            f"{picture}"
        )
    return 0


def _run_label(argv: Sequence[str]) -> int:
    from autolabel.jobconfig import build_job, dump_job_config, parse_job_args

    logging.basicConfig(format="%(levelname)s %(message)s")
    try:
        args = parse_job_args(build_parser(), argv)
    except (ValueError, FileNotFoundError) as error:
        print(f"autolabel: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    logging.getLogger().setLevel(logging.INFO if args.verbose else logging.WARNING)
    if args.print_config:
        sys.stdout.write(dump_job_config(args))
        return 0
    if args.video_dir is None or args.out is None:
        print("autolabel: expected VIDEO_DIR and --out LABEL_DIR (see autolabel --help)", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("autolabel: --workers: expected >= 1", file=sys.stderr)
        return 2
    try:
        if not args.video_dir.exists():
            raise FileNotFoundError(f"{args.video_dir}: input folder not found")
        job = build_job(args)
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"autolabel: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.workers > 1:
        from autolabel.distributed import run_job_distributed

        summary = run_job_distributed(
            args.video_dir, args.out, job, workers=args.workers, progress=not args.no_progress
        )
        if summary is None:  # a non-zero rank: rank 0 reports
            return 0
    else:
        from autolabel.pipeline import run_job

        try:
            summary = run_job(args.video_dir, args.out, job, progress=not args.no_progress)
        except FileNotFoundError as error:
            print(f"autolabel: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    counts = summary.counts()
    print(
        f"autolabel: {counts['labelled']} labelled, {counts['skipped']} already done, {counts['failed']} failed "
        f"-> {args.out}"
    )
    dataset = getattr(summary, "dataset", None)
    if dataset is not None:
        print(
            f"autolabel: training dataset {dataset.out} ({'unchanged' if dataset.reused else 'written'}): "
            f"{dataset.images['train']} train / {dataset.images['val']} val images, split by clip"
            + (f"; YOLO: {dataset.out / 'data.yaml'}" if (dataset.out / "data.yaml").is_file() else "")
        )
        for name, reason in dataset.skipped.items():
            print(f"  not in the dataset: {name}: {reason}", file=sys.stderr)
    for failure in summary.failed:
        print(f"  failed: {failure.source.path}: {failure.reason}", file=sys.stderr)
    if summary.failed:
        print(f"autolabel: exit code 3 (some inputs failed; see {args.out / 'failures.json'})", file=sys.stderr)
    return summary.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autolabel`` console script; returns the exit code (``perception.errors``)."""
    return cli_boundary("autolabel", _dispatch, argv, subcommands=("eval", "review", "calibrate"))


def _dispatch(argv: list[str]) -> int:
    if argv and argv[0] == "eval":
        return _run_eval(argv[1:])
    if argv and argv[0] == "review":
        return _run_review(argv[1:])
    if argv and argv[0] == "calibrate":
        return _run_calibrate(argv[1:])
    if argv and argv[0] == "export":
        return _run_export(argv[1:])
    if argv and argv[0] == "import-cvat":
        return _run_import_cvat(argv[1:])
    if argv and argv[0] in ("--version", "-V"):
        from perception import __version__

        print(f"autolabel (fleetvision) {__version__}")
        return 0
    return _run_label(argv)


if __name__ == "__main__":
    sys.exit(main())
