"""``perception robustness CKPT --data CLIPS --out DIR``: how a trained model degrades under the eight RoboBEV /
nuScenes-C corruptions (``perception.corruptions``) at three severities.

Every clip of the test split runs as one sequence with the temporal state carried from frame to frame, as the
deployed runtime runs it. Sensor failures (``camera_crash``, ``frame_lost``) reach the model through its
``camera_valid`` mask with zero images (the runtime's rule; RoboBEV feeds black images without telling the model);
image corruptions are applied to the frames at the model's input resolution, deterministically for ``--seed``.
Scores are ``perception.metrics.BevDetectionEvaluator``'s NDS and mAP over the whole BEV grid; per corruption the
resilience rate RR = mean NDS over the severities / clean NDS, and mRR = the mean RR over the corruptions (RoboBEV's
definitions). For the sensor failures the report adds the NDS on the remaining field of view: ground truth and
detections of both the clean and the corrupted run restricted, frame by frame, to what a camera that still delivers
can see (``perception.corruptions.in_field_of_view``), so it measures the model, not the lost coverage.

``--rendered fog:2=DIR ...`` adds test splits rendered under weather by the synthetic world (``perception synth
--weather fog --weather-severity 2 --seed S``, the same seed as the clean split: same scenes and labels, fog with
depth): each is scored clean and its RR taken against the clean split's NDS.

Writes ``robustness.json`` (every figure), ``robustness.md`` (the tables) and ``corruptions.png`` (one frame's six
cameras under each corruption and severity) into ``--out``. Exit status 0, 2 for bad input (checkpoint, clips).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perception.corruptions import CORRUPTIONS, SEVERITIES, ClipCorruption, in_field_of_view, parse_corruptions

# RoboBEV (nuScenes-C) camera-only rows, NDS per corruption (mean over its three levels), from the RoboBEV README
# benchmark table; RR = corrupted / clean. Order: clean, then CORRUPTIONS.
ROBOBEV_NDS = {
    "DETR3D": (0.4224, 0.2859, 0.2604, 0.3177, 0.2661, 0.4002, 0.2786, 0.3912, 0.1913),
    "BEVFormer-Base": (0.5174, 0.3154, 0.3017, 0.3509, 0.2695, 0.4184, 0.2515, 0.4069, 0.1857),
    "PolarFormer-R101": (0.4602, 0.3133, 0.2808, 0.3509, 0.3221, 0.4304, 0.2554, 0.4262, 0.2304),
    "BEVDet-R50": (0.3770, 0.2486, 0.1924, 0.2408, 0.2061, 0.2565, 0.1102, 0.2461, 0.0625),
    "BEVDet-SwinT": (0.4037, 0.2609, 0.2115, 0.2278, 0.2128, 0.2191, 0.0490, 0.2450, 0.0680),
}


def robobev_rr() -> dict[str, dict[str, float]]:
    """{model: {corruption: RR, "mRR": mean}} of the published RoboBEV rows (``ROBOBEV_NDS``)."""
    table = {}
    for model, (clean, *scores) in ROBOBEV_NDS.items():
        rates = {name: score / clean for name, score in zip(CORRUPTIONS, scores)}
        table[model] = {**rates, "mRR": float(np.mean(list(rates.values())))}
    return table


@dataclass
class _Chunk:
    """Consecutive frames of one clip as the dataset builds them (numpy, un-batched)."""

    clip: int
    frames: list[int]
    sample: dict[str, Any]


def _field_mask(sample: dict[str, Any], t: int, valid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which ego points (M, 3) of frame ``t`` a camera with ``valid[n]`` sees (model-input cameras of the sample)."""
    from perception.rig import Camera

    height, width = sample["images"].shape[-2:]
    cameras = [
        Camera(
            name=str(n),
            width=width,
            height=height,
            K=sample["intrinsics"][t, n],
            ego_from_camera=np.linalg.inv(sample["camera_from_ego"][t, n].astype(np.float64)),
            distortion_model="radtan",
            distortion=sample["distortion"][t, n],
        )
        for n in range(len(valid))
        if valid[n]
    ]
    return in_field_of_view(points, cameras)


def _subset(table: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {key: value[keep] for key, value in table.items()}


class RobustnessEvaluation:
    """Runs one model over cached test frames under each corruption; ``run(condition)`` returns the scores."""

    def __init__(
        self,
        checkpoint: str | Path,
        clips: Sequence[str | Path],
        *,
        max_frames: int | None = None,
        chunk: int = 10,
        seed: int = 0,
        score_threshold: float = 0.1,
        max_detections: int = 100,
        cache_dir: str | None = None,
    ) -> None:
        import torch

        from perception.clip import DriveClip
        from perception.data.cache import FrameCache
        from perception.data.dataset import ClipWindowDataset
        from perception.data.spec import target_spec_from_model_config
        from perception.training.checkpoint import load_model_checkpoint

        self.model, self.meta = load_model_checkpoint(checkpoint)
        self.model.to(memory_format=torch.channels_last)  # NHWC convolutions: faster on CPU
        self.classes = self.model.config().get("detection3d_classes")
        if not self.classes:
            raise ValueError(f"{checkpoint}: the model has no 3D detection head (detection3d_classes is None)")
        opened = [DriveClip.open(path) for path in clips]
        cameras = self.meta.get("cameras") or opened[0].rig.names
        self.cameras = list(cameras)
        self.dataset = ClipWindowDataset(
            opened,
            cameras=self.cameras,
            spec=target_spec_from_model_config(self.model.config()),
            window=1,
            cache=FrameCache(cache_dir),
        )
        self.seed, self.score_threshold, self.max_detections = seed, score_threshold, max_detections
        self.chunks: list[_Chunk] = []
        for index, clip in enumerate(opened):
            if clip.labels is None:
                raise ValueError(f"{clip.path}: no labels.json (the robustness test needs ground truth)")
            count = clip.num_frames if max_frames is None else min(clip.num_frames, max_frames)
            for start in range(0, count, chunk):
                frames = list(range(start, min(start + chunk, count)))
                self.chunks.append(_Chunk(index, frames, self.dataset.build_sample(index, frames, None)))
        self.clean_predictions: list[dict[str, np.ndarray]] | None = None

    @property
    def clips(self):
        return self.dataset.clips

    def num_frames(self) -> int:
        return sum(len(c.frames) for c in self.chunks)

    def inputs(self, condition: ClipCorruption | None, chunk: _Chunk) -> tuple[np.ndarray, np.ndarray]:
        """(images uint8 [T, N, 3, H, W], camera_valid f32 [T, N]) of a chunk under ``condition``."""
        images, valid = chunk.sample["images"], chunk.sample["camera_valid"].copy()
        if condition is None:
            return images, valid
        clip = self.clips[chunk.clip]
        mask = condition.camera_mask(clip.name, clip.num_frames, len(self.cameras))[chunk.frames]
        images = images.copy()
        if condition.is_sensor:
            images[~mask] = 0
            valid = valid * mask
            return images, valid.astype(np.float32)
        for t, frame in enumerate(chunk.frames):
            for n in range(len(self.cameras)):
                rgb = images[t, n].transpose(1, 2, 0)
                images[t, n] = condition.image(rgb, clip.name, frame, n).transpose(2, 0, 1)
        return images, valid

    def run(self, condition: ClipCorruption | None) -> dict[str, Any]:
        """Scores of the whole split under ``condition`` (None = clean): NDS, mAP, the TP errors and, for sensor
        failures, the clean and corrupted NDS on the remaining field of view."""
        import torch

        from perception.metrics import BevDetectionEvaluator
        from perception.models.decode import decode_bev_detections

        torch.set_grad_enabled(False)
        evaluator = BevDetectionEvaluator(self.classes)
        field = (BevDetectionEvaluator(self.classes), BevDetectionEvaluator(self.classes))
        predictions: list[dict[str, np.ndarray]] = []
        state, last_clip = None, None
        frame_counter = 0
        for chunk in self.chunks:
            images, valid = self.inputs(condition, chunk)
            sample = chunk.sample
            batch = {
                "images": torch.from_numpy(images[None]).float(),
                "intrinsics": torch.from_numpy(sample["intrinsics"][None]),
                "camera_from_ego": torch.from_numpy(sample["camera_from_ego"][None]),
                "distortion": torch.from_numpy(sample["distortion"][None]),
                "camera_valid": torch.from_numpy(valid[None]),
                "prev_from_curr": torch.from_numpy(sample["prev_from_curr"][None]),
                "state_valid": torch.ones(1, len(chunk.frames)),
            }
            if chunk.clip != last_clip:
                state = self.model.initial_state(1)
                batch["state_valid"][0, 0] = 0.0
            outputs = self.model.forward_window(
                batch["images"],
                batch["intrinsics"],
                batch["camera_from_ego"],
                batch["distortion"],
                batch["camera_valid"],
                state,
                batch["prev_from_curr"],
                batch["state_valid"],
            )
            state, last_clip = outputs["state"][:, -1], chunk.clip
            flat = {
                k: outputs[k][0].float() for k in ("heatmap", "offset", "z", "size", "yaw", "velocity") if k in outputs
            }
            decoded = decode_bev_detections(
                flat, grid=self.model.head_grid(), k=self.max_detections, score_threshold=self.score_threshold
            )
            for t, pred in enumerate(decoded):
                keep = sample["gt_class3d"][t] >= 0
                boxes = sample["gt_boxes3d"][t][keep].astype(np.float64)
                gt = {
                    "center": boxes[:, :3],
                    "size": boxes[:, 3:6],
                    "yaw": boxes[:, 6],
                    "velocity": boxes[:, 7:9],
                    "class_id": sample["gt_class3d"][t][keep],
                }
                evaluator.add_frame(pred, gt)
                predictions.append(pred)
                if condition is not None and condition.is_sensor and self.clean_predictions is not None:
                    live = valid[t] > 0
                    gt_in = _field_mask(sample, t, live, gt["center"])
                    clean = self.clean_predictions[frame_counter]
                    field[0].add_frame(
                        _subset(clean, _field_mask(sample, t, live, clean["center"])), _subset(gt, gt_in)
                    )
                    field[1].add_frame(_subset(pred, _field_mask(sample, t, live, pred["center"])), _subset(gt, gt_in))
                frame_counter += 1
        if condition is None:
            self.clean_predictions = predictions
        result = evaluator.compute()
        scores = {key: result[key] for key in ("NDS", "mAP", "mATE", "mASE", "mAOE", "mAVE")}
        if condition is not None and condition.is_sensor and self.clean_predictions is not None:
            clean_field, corrupted_field = field[0].compute(), field[1].compute()
            scores["field_of_view"] = {
                "clean_NDS": clean_field["NDS"],
                "NDS": corrupted_field["NDS"],
                "clean_mAP": clean_field["mAP"],
                "mAP": corrupted_field["mAP"],
            }
        return scores


def summarise(clean: dict[str, Any], conditions: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per corruption: NDS/mAP per severity, their means, RR (= mean NDS / clean NDS) and the field-of-view RR; mRR."""
    table: dict[str, Any] = {}
    for name, by_severity in conditions.items():
        nds = [s["NDS"] for s in by_severity.values()]
        entry: dict[str, Any] = {
            "severities": by_severity,
            "NDS": float(np.mean(nds)),
            "mAP": float(np.mean([s["mAP"] for s in by_severity.values()])),
            "RR": float(np.mean(nds)) / clean["NDS"] if clean["NDS"] > 0 else float("nan"),
        }
        fields = [s["field_of_view"] for s in by_severity.values() if "field_of_view" in s]
        if fields:
            clean_field = float(np.mean([f["clean_NDS"] for f in fields]))
            corrupted_field = float(np.mean([f["NDS"] for f in fields]))
            entry["field_of_view_RR"] = corrupted_field / clean_field if clean_field > 0 else float("nan")
        table[name] = entry
    rates = [entry["RR"] for entry in table.values()]
    return {"clean": clean, "corruptions": table, "mRR": float(np.mean(rates)) if rates else float("nan")}


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}"


def markdown(report: dict[str, Any]) -> str:
    """The report's tables: NDS / mAP / RR per corruption and severity, then ours next to RoboBEV's rows."""
    clean = report["clean"]
    severities = report["severities"]
    lines = [
        f"# Robustness: {report['checkpoint']}",
        "",
        f"Test split: {report['clips']} clips, {report['frames']} frames, cameras {', '.join(report['cameras'])}; "
        f"state carried through each clip; seed {report['seed']}; {report['seconds']:.0f} s.",
        "",
        f"Clean: NDS **{clean['NDS']:.4f}**, mAP {clean['mAP']:.4f}.  **mRR {_pct(report['mRR'])} %**",
        "",
        "| corruption | " + " | ".join(f"NDS s{s}" for s in severities) + " | mean NDS | mean mAP | RR % | "
        "RR on remaining field of view % |",
        "|---|" + "---|" * (len(severities) + 4),
    ]
    for name, entry in report["corruptions"].items():
        cells = [f"{entry['severities'][str(s)]['NDS']:.4f}" for s in severities]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {entry['NDS']:.4f} | {entry['mAP']:.4f} | {_pct(entry['RR'])} | "
            + f"{_pct(entry.get('field_of_view_RR')) if 'field_of_view_RR' in entry else '-'} |"
        )
    lines += ["", "RR per corruption (%), ours next to RoboBEV's published camera-only rows (nuScenes-C):", ""]
    names = list(CORRUPTIONS)
    lines.append("| model | mRR | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    ours = report["corruptions"]
    lines.append(
        "| **this model** | **"
        + _pct(report["mRR"])
        + "** | "
        + " | ".join(_pct(ours[n]["RR"]) if n in ours else "-" for n in names)
        + " |"
    )
    for model, rates in robobev_rr().items():
        lines.append(f"| RoboBEV {model} | {_pct(rates['mRR'])} | " + " | ".join(_pct(rates[n]) for n in names) + " |")
    rendered = report.get("rendered") or {}
    if rendered:
        lines += [
            "",
            "Weather rendered with depth by the synthetic world (same scenes and labels as the clean split):",
            "",
            "| weather | severity | NDS | mAP | RR % |",
            "|---|---|---|---|---|",
        ]
        for weather, by_severity in rendered.items():
            for severity, entry in by_severity.items():
                lines.append(
                    f"| {weather} | {severity} | {entry['NDS']:.4f} | {entry['mAP']:.4f} | {_pct(entry['RR'])} |"
                )
    lines += [
        "",
        "RoboBEV blacks out crashed and lost cameras without telling the model; here the model is told through its "
        "camera_valid mask, as the runtime tells it. Camera crash kills 2 / 3 / 4 of 6 cameras (nuScenes-C: 1.8 / "
        "3.1 / 3.6 on average); frame lost drops each image with probability 1/3, 2/3, 5/6 (as nuScenes-C).",
        "",
        "![corruptions](corruptions.png)",
    ]
    return "\n".join(lines) + "\n"


def corruption_picture(evaluation: RobustnessEvaluation, conditions: list[ClipCorruption], frame: int) -> np.ndarray:
    """BGR mosaic: one row per condition (clean first), one 2x3 camera mosaic per severity, labelled."""
    import cv2

    chunk = next((c for c in evaluation.chunks if c.clip == 0 and frame in c.frames), evaluation.chunks[0])
    t = chunk.frames.index(frame) if frame in chunk.frames else 0
    cell_h, cell_w = 72, 128
    columns = 3 if len(evaluation.cameras) > 3 else len(evaluation.cameras)
    rows_of_cams = -(-len(evaluation.cameras) // columns)

    def mosaic(images: np.ndarray, valid: np.ndarray, caption: str) -> np.ndarray:
        tile = np.zeros((rows_of_cams * cell_h + 18, columns * cell_w, 3), np.uint8)
        for n in range(len(evaluation.cameras)):
            image = cv2.resize(images[t, n].transpose(1, 2, 0)[..., ::-1], (cell_w, cell_h))
            if valid[t, n] <= 0:
                cv2.line(image, (0, 0), (cell_w - 1, cell_h - 1), (0, 0, 255), 1)
                cv2.line(image, (0, cell_h - 1), (cell_w - 1, 0), (0, 0, 255), 1)
            r, c = divmod(n, columns)
            tile[18 + r * cell_h : 18 + (r + 1) * cell_h, c * cell_w : (c + 1) * cell_w] = image
        cv2.putText(tile, caption, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
        return tile

    rows: dict[str, list[np.ndarray]] = {}
    clean_images, clean_valid = evaluation.inputs(None, chunk)
    rows["clean"] = [mosaic(clean_images, clean_valid, "clean")]
    for condition in conditions:
        images, valid = evaluation.inputs(condition, chunk)
        rows.setdefault(condition.name, []).append(mosaic(images, valid, condition.label))
    width = max(sum(tile.shape[1] + 4 for tile in row) for row in rows.values())
    lines = []
    for row in rows.values():
        line = np.concatenate([np.pad(tile, ((2, 2), (2, 2), (0, 0))) for tile in row], axis=1)
        lines.append(np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0))))
    return np.concatenate(lines, axis=0)


def evaluate_robustness(
    checkpoint: str | Path,
    clips: Sequence[str | Path],
    out_dir: str | Path,
    *,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    max_frames: int | None = None,
    seed: int = 0,
    picture_frame: int | None = None,
    progress: bool = True,
    cache_dir: str | None = None,
    rendered: dict[str, Sequence[str | Path]] | None = None,
) -> dict[str, Any]:
    """Evaluate, write ``robustness.json``, ``robustness.md``, ``corruptions.png`` into ``out_dir``; the report."""
    import cv2
    from tqdm import tqdm

    from perception.atomic import atomic_write_text

    started = time.perf_counter()
    names = parse_corruptions(corruptions)
    severities = [int(s) for s in severities]
    bad = [s for s in severities if s not in SEVERITIES]
    if bad:
        raise ValueError(f"--severities: expected values from {list(SEVERITIES)}, found {bad}")
    evaluation = RobustnessEvaluation(checkpoint, clips, max_frames=max_frames, seed=seed, cache_dir=cache_dir)
    conditions = [ClipCorruption(name, severity, seed) for name in names for severity in severities]
    rendered = dict(rendered or {})
    for key in rendered:
        weather, _, severity = key.partition(":")
        if not weather or not severity.isdigit():
            raise ValueError(f"--rendered {key!r}: expected WEATHER:SEVERITY=FOLDER, e.g. fog:2=runs/test_fog2")
    total = len(conditions) + 1 + len(rendered)
    bar = tqdm(total=total, desc="robustness", unit="condition", disable=not progress)
    clean = evaluation.run(None)
    bar.update(1)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for condition in conditions:
        bar.set_postfix(condition=condition.label)
        results.setdefault(condition.name, {})[str(int(condition.severity))] = evaluation.run(condition)
        bar.update(1)
    rendered_scores: dict[str, dict[str, Any]] = {}
    clean_names = sorted(c.name for c in evaluation.clips)
    for key, folders in rendered.items():
        bar.set_postfix(condition=f"rendered {key}")
        weather, _, severity = key.partition(":")
        split = RobustnessEvaluation(checkpoint, folders, max_frames=max_frames, seed=seed, cache_dir=cache_dir)
        scores = split.run(None)
        scores["RR"] = scores["NDS"] / clean["NDS"] if clean["NDS"] > 0 else float("nan")
        scores["same_clips_as_clean"] = sorted(c.name for c in split.clips) == clean_names
        rendered_scores.setdefault(weather, {})[severity] = scores
        bar.update(1)
    bar.close()
    report = {
        "checkpoint": str(checkpoint),
        "clips": len(evaluation.clips),
        "clip_paths": [str(c.path) for c in evaluation.clips],
        "frames": evaluation.num_frames(),
        "cameras": evaluation.cameras,
        "seed": seed,
        "severities": severities,
        "score_threshold": evaluation.score_threshold,
        **summarise(clean, results),
        "robobev_rr": robobev_rr(),
        "rendered": rendered_scores,
    }
    report["seconds"] = time.perf_counter() - started
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = picture_frame if picture_frame is not None else min(evaluation.chunks[0].frames[-1], 5)
    picture = corruption_picture(evaluation, conditions, frame)
    ok, encoded = cv2.imencode(".png", picture)
    if ok:
        temporary = out / ".corruptions.png.tmp"
        temporary.write_bytes(encoded.tobytes())
        temporary.replace(out / "corruptions.png")
    atomic_write_text(out / "robustness.json", json.dumps(report, indent=1, default=float))
    atomic_write_text(out / "robustness.md", markdown(report))
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perception robustness",
        description="NDS, mAP and resilience rate (RR, mRR) of a checkpoint under the eight RoboBEV corruptions "
        "(camera crash, frame lost, colour quantisation, motion blur, brightness, low light, fog, snow).",
    )
    parser.add_argument("checkpoint", type=Path, help="model.pt (exported) or a Lightning .ckpt")
    parser.add_argument("--data", nargs="+", required=True, help="test clips: clip folders or folders of clips")
    parser.add_argument("--out", type=Path, required=True, help="folder for robustness.json/.md, corruptions.png")
    parser.add_argument(
        "--corruptions", nargs="+", default=["all"], help=f"names from {list(CORRUPTIONS)} or 'all' (default)"
    )
    parser.add_argument("--severities", nargs="+", type=int, default=list(SEVERITIES), help="from 1 2 3 (default all)")
    parser.add_argument("--max-frames", type=int, default=None, help="frames per clip (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="corruption seed (default 0)")
    parser.add_argument("--picture-frame", type=int, default=None, help="frame of the first clip for the picture")
    parser.add_argument("--cache-dir", default=None, help="frame cache (default: the training cache)")
    parser.add_argument(
        "--rendered",
        nargs="+",
        default=[],
        metavar="WEATHER:SEVERITY=FOLDER",
        help="test splits rendered under weather (perception synth --weather ..., same seed as --data)",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from perception.clip import ClipError
    from perception.data.datamodule import resolve_clip_paths
    from perception.labels import LabelsError
    from perception.rig import RigError

    try:
        clips = resolve_clip_paths(args.data)
        if not clips:
            raise FileNotFoundError(f"--data {args.data}: no drive clips found")
        rendered: dict[str, list[Path]] = {}
        for item in args.rendered:
            key, _, folder = item.partition("=")
            if not folder:
                raise ValueError(f"--rendered {item!r}: expected WEATHER:SEVERITY=FOLDER")
            rendered[key] = resolve_clip_paths(folder)
        report = evaluate_robustness(
            args.checkpoint,
            clips,
            args.out,
            corruptions=args.corruptions,
            severities=args.severities,
            max_frames=args.max_frames,
            seed=args.seed,
            picture_frame=args.picture_frame,
            progress=not args.no_progress,
            cache_dir=args.cache_dir,
            rendered=rendered,
        )
    except (FileNotFoundError, ValueError, ClipError, LabelsError, RigError) as error:
        print(f"perception robustness: {error}", file=sys.stderr)
        return 2
    print(markdown(report))
    print(f"wrote {args.out / 'robustness.json'}, robustness.md, corruptions.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
