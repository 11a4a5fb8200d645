"""Training losses. ``compute_losses(outputs, targets)`` pairs each enabled head's outputs with the targets of
``perception.models.targets`` (same keys, batched; any extra leading dims such as T are fine)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

DEFAULT_WEIGHTS = {
    "heatmap": 1.0,
    "offset": 1.0,
    "z": 1.0,
    "size": 1.0,
    "yaw": 1.0,
    "velocity": 0.2,
    "segmentation": 1.0,
    "det2d_heatmap": 1.0,
    "det2d_box": 1.0,
}
BEV_REGRESSION_MASKS = {
    "offset": "reg_mask",
    "z": "reg_mask",
    "size": "reg_mask",
    "yaw": "reg_mask",
    "velocity": "velocity_mask",
}


def focal_heatmap_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = 2.0,
    beta: float = 4.0,
    ignore: torch.Tensor | None = None,
    quality: torch.Tensor | None = None,
) -> torch.Tensor:
    """CenterNet penalty-reduced focal loss on logits vs gaussian heatmap targets, / number of peaks (>= 1).

    ``ignore`` (same shape, 0/1): cells that are not background (uncertain pseudo-labels): no negative loss there.

    ``quality`` (same shape, in [0, 1]; ``heatmap_quality`` of the targets): the probability that the box drawn at
    each cell is a real object. The loss is its expectation: at a peak, q x the object loss + (1 - q) x the
    background loss; around it the penalty reduction is q x CenterNet's; the normaliser is the expected number of
    objects. With q = 1 (ground truth) this is CenterNet's loss exactly; the optimum at a peak is a score near q."""
    logits = logits.float()
    target = target.float()
    prob = torch.sigmoid(logits)
    positive = (target >= 1.0 - 1e-4).float()
    object_loss = -F.logsigmoid(logits) * (1.0 - prob).pow(alpha)
    background_loss = -F.logsigmoid(-logits) * prob.pow(alpha)
    keep = 1.0 if ignore is None else 1.0 - ignore.float()
    if quality is None:
        pos_loss = object_loss * positive
        neg_loss = background_loss * (1.0 - target).pow(beta) * (1.0 - positive) * keep
        return (pos_loss.sum() + neg_loss.sum()) / positive.sum().clamp(min=1.0)
    q = quality.float()
    pos_loss = (q * object_loss + (1.0 - q) * background_loss) * positive
    reduction = 1.0 - q * (1.0 - (1.0 - target).pow(beta))
    neg_loss = background_loss * reduction * (1.0 - positive) * keep
    return (pos_loss.sum() + neg_loss.sum()) / (q * positive).sum().clamp(min=1.0)


def masked_l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean L1 over channels at masked cells: pred/target [...,C,H,W], mask [...,H,W] (0/1)."""
    mask = mask.to(pred.dtype).unsqueeze(-3)
    total = ((pred - target).abs() * mask).sum()
    return total / (mask.sum() * pred.shape[-3]).clamp(min=1.0)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, *, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per class over [...,S,H,W], averaged over classes."""
    prob = torch.sigmoid(logits.float()).transpose(0, -3).flatten(1)
    truth = target.float().transpose(0, -3).flatten(1)
    dice = (2 * (prob * truth).sum(1) + eps) / (prob.sum(1) + truth.sum(1) + eps)
    return (1.0 - dice).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, *, dice_weight: float = 0.0) -> torch.Tensor:
    """Per-pixel BCE on independent (multi-label) class logits [...,S,H,W] (+ ``dice_weight`` * Dice)."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float())
    if dice_weight > 0:
        loss = loss + dice_weight * dice_loss(logits, target)
    return loss


def _require(targets: Mapping[str, torch.Tensor], keys: list[str], head: str) -> None:
    missing = [k for k in keys if k not in targets]
    if missing:
        raise KeyError(f"compute_losses: the {head} head needs target keys {missing}; found {sorted(targets)}")


def compute_losses(
    outputs: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    *,
    weights: Mapping[str, float] | None = None,
    dice_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Named scalar losses for every head present in ``outputs`` plus their weighted sum ``total``.

    Targets (batched targets.py arrays as tensors): BEV detection heatmap, offset, z, size, yaw, velocity,
    reg_mask, velocity_mask, optional heatmap_ignore and heatmap_quality; segmentation [...,S,H,W] 0/1;
    det2d_heatmap, det2d_box, det2d_mask.
    """
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    losses: dict[str, torch.Tensor] = {}
    if "heatmap" in outputs:
        _require(targets, ["heatmap", *BEV_REGRESSION_MASKS, "reg_mask", "velocity_mask"], "3D detection")
        losses["heatmap"] = focal_heatmap_loss(
            outputs["heatmap"],
            targets["heatmap"],
            ignore=targets.get("heatmap_ignore"),
            quality=targets.get("heatmap_quality"),
        )
        for name, mask in BEV_REGRESSION_MASKS.items():
            losses[name] = masked_l1_loss(outputs[name], targets[name], targets[mask])
    if "segmentation" in outputs:
        _require(targets, ["segmentation"], "segmentation")
        losses["segmentation"] = segmentation_loss(
            outputs["segmentation"], targets["segmentation"], dice_weight=dice_weight
        )
    if "det2d_heatmap" in outputs:
        _require(targets, ["det2d_heatmap", "det2d_box", "det2d_mask"], "2D detection")
        losses["det2d_heatmap"] = focal_heatmap_loss(outputs["det2d_heatmap"], targets["det2d_heatmap"])
        losses["det2d_box"] = masked_l1_loss(outputs["det2d_box"], targets["det2d_box"], targets["det2d_mask"])
    if not losses:
        raise ValueError(f"compute_losses: outputs contain no head outputs, found keys {sorted(outputs)}")
    losses["total"] = sum(w[name] * value for name, value in losses.items())
    return losses
