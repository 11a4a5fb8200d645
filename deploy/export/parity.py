"""``deploy parity``: ONNX Runtime vs PyTorch on real clip frames, the recurrent state carried in each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy.export import ExportError
from deploy.export.graph import BOX3D_COLUMNS, DeployGraph, torch_runner


@dataclass
class OutputParity:
    """Absolute error of one output, ONNX Runtime vs PyTorch, over the frames checked."""

    name: str
    max_abs: float
    mean_abs: float
    limit: str
    passed: bool
    agreement: float | None = None  # detection outputs: fraction of PyTorch slots found in the ORT output


@dataclass
class ParityReport:
    """ORT vs PyTorch on real clip frames, the recurrent state carried in each."""

    model: str
    clip: str
    frames: list[int]
    outputs: list[OutputParity]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "clip": self.clip,
            "frames": self.frames,
            "passed": self.passed,
            "outputs": [o.__dict__ for o in self.outputs],
        }

    def format(self) -> str:
        lines = [
            f"parity {self.model} vs PyTorch on {self.clip} frames {self.frames}: {'PASS' if self.passed else 'FAIL'}",
            "| output | max abs | mean abs | limit | agreement | ok |",
            "|---|---|---|---|---|---|",
        ]
        for o in self.outputs:
            agreement = "-" if o.agreement is None else f"{o.agreement:.3f}"
            lines.append(
                f"| {o.name} | {o.max_abs:.3g} | {o.mean_abs:.3g} | {o.limit} | {agreement} | "
                f"{'yes' if o.passed else 'NO'} |"
            )
        return "\n".join(lines)


def _slot_errors(
    ref_boxes: np.ndarray,
    ref_scores: np.ndarray,
    ref_class: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    score_tol: float,
) -> tuple[list[float], int, int]:
    """Tie-tolerant slot matching of one top-K list: each reference slot clearly inside the top-K (score above the
    K-th score + tol) is matched to the candidate slots of the same class and equal score (within tol); the box
    error is the smallest over those (equal scores may come out of top-K in either order)."""
    errors: list[float] = []
    matched = considered = 0
    cutoff = ref_scores.min() + score_tol
    for j in np.flatnonzero(ref_scores > cutoff):
        considered += 1
        candidates = np.flatnonzero((classes == ref_class[j]) & (np.abs(scores - ref_scores[j]) <= score_tol))
        if len(candidates) == 0:
            continue
        matched += 1
        diff = np.abs(boxes[candidates].astype(np.float64) - ref_boxes[j].astype(np.float64))
        if ref_boxes.shape[-1] == len(BOX3D_COLUMNS):  # yaw column: compare on the circle
            yaw = BOX3D_COLUMNS.index("yaw")
            diff[:, yaw] = np.abs((diff[:, yaw] + np.pi) % (2 * np.pi) - np.pi)
        errors.append(float(diff.max(axis=1).min()))
    return errors, matched, considered


def parity_check(
    onnx_path: str | Path,
    graph: DeployGraph,
    clip: str | Path,
    *,
    frames: int = 4,
    atol: float = 1e-3,
    rtol: float = 1e-3,
    box_atol: float = 1e-2,
    min_agreement: float = 0.98,
) -> ParityReport:
    """Run ONNX Runtime and PyTorch on the first ``frames`` frames of a real clip (each carrying its own state);
    dense outputs must satisfy |ort - torch| <= atol + rtol * |torch|; detections are matched slot by slot."""
    from deploy.metadata import read_metadata
    from deploy.onnx_utils import make_session
    from deploy.runtime.baked_rig import rig_checker
    from deploy.runtime.clip_inputs import clip_steps, run_sequence

    metadata = read_metadata(onnx_path)
    session = make_session(onnx_path)
    names = [o.name for o in session.get_outputs()]
    state0 = np.zeros([1, *metadata["state_shape"]], np.float32)
    check = rig_checker(metadata, model=str(onnx_path))
    size_hw = tuple(metadata["image_size"])
    steps = list(clip_steps(clip, cameras=metadata["cameras"], size_hw=size_hw, stop=frames, rig_check=check))
    if not steps:
        raise ExportError(f"{clip}: no frames to check parity on")
    ort_runs = [o for _, _, o in run_sequence(lambda f: dict(zip(names, session.run(names, f))), steps, state0)]
    torch_runs = [o for _, _, o in run_sequence(torch_runner(graph), steps, state0)]
    results: list[OutputParity] = []
    for name in names:
        ref = [np.asarray(t[name]) for t in torch_runs]
        got = [np.asarray(o[name]) for o in ort_runs]
        if name.endswith("class_id"):
            continue
        if name in ("det3d_boxes", "det2d_boxes"):
            prefix = name.split("_")[0]
            errors: list[float] = []
            matched = considered = 0
            for t_out, o_out in zip(torch_runs, ort_runs):
                rb, rs, rc = (np.asarray(t_out[f"{prefix}_{k}"]) for k in ("boxes", "scores", "class_id"))
                ob, os_, oc = (np.asarray(o_out[f"{prefix}_{k}"]) for k in ("boxes", "scores", "class_id"))
                width = rb.shape[-1]
                rb, ob = rb.reshape(-1, rs.shape[-1], width), ob.reshape(-1, os_.shape[-1], width)
                rs, os_, rc, oc = (a.reshape(-1, a.shape[-1]) for a in (rs, os_, rc, oc))
                for i in range(len(rs)):
                    e, m, c = _slot_errors(rb[i], rs[i], rc[i], ob[i], os_[i], oc[i], atol)
                    errors += e
                    matched, considered = matched + m, considered + c
            agreement = matched / considered if considered else 1.0
            worst = max(errors, default=0.0)
            results.append(
                OutputParity(
                    name,
                    worst,
                    float(np.mean(errors)) if errors else 0.0,
                    f"<= {box_atol:g}, agreement >= {min_agreement:g}",
                    agreement >= min_agreement and worst <= box_atol,
                    agreement,
                )
            )
            continue
        if name.endswith("scores"):
            ref = [-np.sort(-r, axis=-1) for r in ref]
            got = [-np.sort(-g, axis=-1) for g in got]
        diff = np.concatenate([np.abs(g.astype(np.float64) - r.astype(np.float64)).ravel() for g, r in zip(got, ref)])
        bound = np.concatenate([(atol + rtol * np.abs(r.astype(np.float64))).ravel() for r in ref])
        results.append(
            OutputParity(
                name, float(diff.max()), float(diff.mean()), f"<= {atol:g} + {rtol:g}|x|", bool(np.all(diff <= bound))
            )
        )
    return ParityReport(model=str(onnx_path), clip=str(clip), frames=[s.index for s in steps], outputs=results)
