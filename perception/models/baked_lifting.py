"""The view transform with a fixed rig baked in: ``BevLifting`` evaluated once, stored as gathers and weights.

A deployed rig does not move, so the projection of the voxel centres into the cameras (intrinsics, extrinsics,
distortion: ``BevLifting.sampling_grid``, the one definition training uses) need not run per frame. ``bake`` runs it
once and turns ``grid_sample``'s bilinear taps (align_corners=False, zero padding) into constant indices into a
table of all cameras' feature pixels plus weights, the way BEVPoolv2 precomputes its voxel indices and Fast-BEV++
decomposes the view transform into index/gather/reshape steps of plain operators (no custom kernel, exports to any
ONNX runtime). Per frame only gathers, multiplies and adds remain.

Layout: voxels are processed in "levels": level k holds the voxels seen by more than k cameras, with the k-th camera
(in camera order) that sees each; level 0 covers every voxel (unseen ones read a zero row). Each level does four
gathers (the bilinear corners) of ``table`` rows ``[B, N*h*w + 1, C]`` (the last row is zeros), weighted and summed;
levels above 0 are scattered back by one more gather. ``camera_valid`` still works: invalid cameras' rows of the
table are zeroed and the average divides by the number of valid cameras that see the voxel, exactly as
``BevLifting.forward`` does. Training keeps ``BevLifting`` (augmentation moves the cameras every sample).

Cameras are captured at different times, so a frame's ``camera_from_ego`` is the static extrinsics moved by the ego
motion since the frame's reference time (up to ~0.4 m at 40 ms and 10 m/s). The baked graph follows it to first
order: the derivative of every sampling point with respect to that small motion is baked too (forward-mode
derivatives of the same ``sampling_grid``), and the bilinear weights move with the point inside its cell.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from perception.models.view_transform import BevLifting


def bilinear_taps(
    grid: torch.Tensor, feature_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``F.grid_sample``'s bilinear taps (align_corners=False, padding zeros) of normalised points ``grid`` [..., 2]
    on an h x w map -> (pixel index y*w + x [..., 4], weight [..., 4], d weight / d x, d weight / d y [..., 4] per
    feature pixel of displacement inside the cell); corners outside the map get weight and derivatives 0 (and index
    0). Same arithmetic as PyTorch's CPU kernel: source = ((g + 1) * size - 1) / 2, corner weights are the products
    of the distances to the opposite corner."""
    height, width = int(feature_hw[0]), int(feature_hw[1])
    ix = ((grid[..., 0] + 1.0) * width - 1.0) / 2.0
    iy = ((grid[..., 1] + 1.0) * height - 1.0) / 2.0
    x0, y0 = torch.floor(ix), torch.floor(iy)
    x1, y1 = x0 + 1.0, y0 + 1.0
    one = torch.ones_like(ix)
    # (corner x, corner y, weight, d weight / d ix, d weight / d iy)
    corners = (
        (x0, y0, (x1 - ix) * (y1 - iy), -(y1 - iy), -(x1 - ix)),
        (x1, y0, (ix - x0) * (y1 - iy), (y1 - iy), -(ix - x0)),
        (x0, y1, (x1 - ix) * (iy - y0), -(iy - y0), (x1 - ix)),
        (x1, y1, (ix - x0) * (iy - y0), (iy - y0) * one, (ix - x0) * one),
    )
    indices, weights, d_x, d_y = [], [], [], []
    for x, y, weight, weight_dx, weight_dy in corners:
        inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        index = y.clamp(0, height - 1).long() * width + x.clamp(0, width - 1).long()
        zero = torch.zeros_like(weight)
        indices.append(torch.where(inside, index, torch.zeros_like(index)))
        weights.append(torch.where(inside, weight, zero))
        d_x.append(torch.where(inside, weight_dx, zero))
        d_y.append(torch.where(inside, weight_dy, zero))
    return torch.stack(indices, dim=-1), torch.stack(weights, dim=-1), torch.stack(d_x, dim=-1), torch.stack(d_y, -1)


def motion_jacobian(
    lifting: BevLifting,
    *,
    intrinsics: torch.Tensor,
    camera_from_ego: torch.Tensor,
    distortion: torch.Tensor,
    image_size: tuple[int, int],
    feature_hw: tuple[int, int],
) -> torch.Tensor:
    """d (x, y) / d g [N, P, 2, 12]: how each camera's sampling point of every voxel moves on the h x w feature map
    (feature pixels) when its ``camera_from_ego`` becomes ``camera_from_ego @ (I + G)``, G's top three rows = g
    (row-major), at g = 0. Forward-mode derivatives of ``lifting.sampling_grid`` itself (the one projection)."""
    cams = camera_from_ego.shape[0]

    def grid_of(g: torch.Tensor) -> torch.Tensor:
        motion = torch.cat([g.view(cams, 3, 4), torch.zeros(cams, 1, 4)], dim=1) + torch.eye(4)
        grid, _ = lifting.sampling_grid(
            intrinsics.float().unsqueeze(0),
            (camera_from_ego.float() @ motion).unsqueeze(0),
            distortion.float().unsqueeze(0),
            image_size,
        )
        return grid[0]

    zero = torch.zeros(cams, 12)
    columns = []
    for parameter in range(12):
        tangent = torch.zeros(cams, 12)
        tangent[:, parameter] = 1.0
        columns.append(torch.func.jvp(grid_of, (zero,), (tangent,))[1])  # [N,P,2] normalised units
    scale = torch.tensor([feature_hw[1] / 2.0, feature_hw[0] / 2.0])  # d source pixel / d normalised coordinate
    return torch.stack(columns, dim=-1) * scale.view(1, 1, 2, 1)


class BakedBevLifting(nn.Module):
    """``BevLifting`` for one fixed rig: camera features [B,N,C,h,w] + ``camera_valid`` [B,N] -> BEV [B, C*Z, H, W].

    Build it with ``bake``. ``forward`` takes ``BevLifting.forward``'s arguments so it can replace a model's
    ``lifting``; the calibration arguments intrinsics, distortion and image_size are ignored (the baked rig's were
    used) and ``camera_from_ego`` only drives the motion correction below. Buffers: ``seen`` [N, P] (1 where camera
    n sees voxel p), per level k ``level{k}_index`` [4, Q_k] table rows, ``level{k}_weight`` [4, Q_k], and for k > 0
    ``level{k}_scatter`` [P] (row of the level's result per voxel, Q_k = none).

    Motion correction (``correct_motion``): the baked extrinsics are the rig's static ones, but a frame's
    ``camera_from_ego`` also carries the ego motion between each camera's capture and the frame's reference time.
    ``forward`` reads it, takes each camera's small motion g (``camera_from_ego = static @ (I + G)``), moves every
    sampling point by ``motion_jacobian`` . g and updates the bilinear weights to first order inside their cell
    (``level{k}_camera`` [Q_k], ``level{k}_jacobian`` [Q_k, 2, 12], ``level{k}_dweight`` [2, 4, Q_k]). With the
    static extrinsics (g = 0) the output is exactly the uncorrected one."""

    def __init__(
        self,
        *,
        grid_shape: tuple[int, int, int],
        feature_hw: tuple[int, int],
        seen: torch.Tensor,
        levels: list[dict[str, torch.Tensor]],
        ego_from_camera: torch.Tensor | None = None,
    ) -> None:
        """``ego_from_camera`` [N,4,4]: the inverse of the baked static extrinsics, for the motion correction
        (None: no correction; the levels then need no ``camera``/``jacobian``/``dweight``)."""
        super().__init__()
        self.grid_shape = tuple(int(v) for v in grid_shape)
        self.feature_hw = (int(feature_hw[0]), int(feature_hw[1]))
        self.num_cameras = int(seen.shape[0])
        self.num_levels = len(levels)
        self.register_buffer("seen", seen.float(), persistent=False)
        self.correct_motion = ego_from_camera is not None
        if self.correct_motion:
            self.register_buffer("ego_from_camera", ego_from_camera.float(), persistent=False)
        for k, level in enumerate(levels):
            self.register_buffer(f"level{k}_index", level["index"].long(), persistent=False)
            self.register_buffer(f"level{k}_weight", level["weight"].float(), persistent=False)
            if k > 0:
                self.register_buffer(f"level{k}_scatter", level["scatter"].long(), persistent=False)
            if self.correct_motion:
                self.register_buffer(f"level{k}_camera", level["camera"].long(), persistent=False)
                self.register_buffer(f"level{k}_jacobian", level["jacobian"].float(), persistent=False)
                self.register_buffer(f"level{k}_dweight", level["dweight"].float(), persistent=False)

    @classmethod
    def bake(
        cls,
        lifting: BevLifting,
        *,
        intrinsics: torch.Tensor,
        camera_from_ego: torch.Tensor,
        distortion: torch.Tensor,
        image_size: tuple[int, int],
        feature_hw: tuple[int, int],
        correct_motion: bool = True,
    ) -> BakedBevLifting:
        """Evaluate ``lifting.sampling_grid`` once for the rig (intrinsics [N,3,3] for the ``image_size`` (H, W)
        model input, camera_from_ego [N,4,4], distortion [N,D] in the model's layout, as the model's forward takes
        them) and store the taps on the ``feature_hw`` (h, w) feature map the image encoder produces; with
        ``correct_motion`` also the first-order motion correction (see the class doc)."""
        with torch.no_grad():
            grid, seen = lifting.sampling_grid(
                intrinsics.float().unsqueeze(0),
                camera_from_ego.float().unsqueeze(0),
                distortion.float().unsqueeze(0),
                (int(image_size[0]), int(image_size[1])),
            )
        grid, seen = grid[0], seen[0]  # [N,P,2], [N,P]
        cams, points = seen.shape
        pixels = int(feature_hw[0]) * int(feature_hw[1])
        index, weight, weight_dx, weight_dy = bilinear_taps(grid, feature_hw)  # [N,P,4] each
        jacobian = None
        if correct_motion:
            jacobian = motion_jacobian(
                lifting,
                intrinsics=intrinsics,
                camera_from_ego=camera_from_ego,
                distortion=distortion,
                image_size=(int(image_size[0]), int(image_size[1])),
                feature_hw=feature_hw,
            )  # [N,P,2,12]
        index = index + (torch.arange(cams) * pixels).view(cams, 1, 1)  # row of the cameras' stacked table
        weight = weight * seen.unsqueeze(-1)
        zero_row = cams * pixels
        index = torch.where(weight > 0, index, torch.full_like(index, zero_row))
        rank = torch.cumsum(seen.long(), dim=0) - 1  # [N,P]: how many earlier cameras see the voxel
        count = seen.sum(dim=0)  # [P]
        levels: list[dict[str, torch.Tensor]] = []
        for k in range(max(int(count.max()), 1)):
            voxels = torch.arange(points) if k == 0 else torch.nonzero(count > k).squeeze(1)
            chosen = seen[:, voxels] & (rank[:, voxels] == k)  # [N,Q]: at most one camera per voxel
            camera = chosen.float().argmax(dim=0)  # voxels without a k-th camera: any, weight 0 below
            has = chosen.any(dim=0)
            level_index = index[camera, voxels].T.contiguous()  # [4,Q]
            level_weight = (weight[camera, voxels] * has.unsqueeze(-1)).T.contiguous()
            level_index = torch.where(level_weight > 0, level_index, torch.full_like(level_index, zero_row))
            level: dict[str, torch.Tensor] = {"index": level_index, "weight": level_weight}
            if jacobian is not None:
                live = (level_weight.sum(dim=0) > 0).float()  # [Q]: pairs with a tap in the map
                level["camera"] = camera
                level["jacobian"] = jacobian[camera, voxels] * live.view(-1, 1, 1)
                level["dweight"] = torch.stack(
                    [(d[camera, voxels] * has.unsqueeze(-1)).T * live for d in (weight_dx, weight_dy)]
                )
            if k > 0:
                scatter = torch.full((points,), len(voxels), dtype=torch.long)
                scatter[voxels] = torch.arange(len(voxels))
                level["scatter"] = scatter
            levels.append(level)
        ego_from_camera = torch.linalg.inv(camera_from_ego.double()).float() if correct_motion else None
        return cls(
            grid_shape=lifting.grid_shape,
            feature_hw=feature_hw,
            seen=seen,
            levels=levels,
            ego_from_camera=ego_from_camera,
        )

    def statistics(self) -> dict[str, Any]:
        """Voxels, how many see 0, 1, 2, ... cameras, and taps gathered per frame (for reports and metadata)."""
        seen_by = self.seen.sum(dim=0).long()
        histogram = torch.bincount(seen_by, minlength=self.num_levels + 1).tolist()
        taps = sum(int(getattr(self, f"level{k}_index").shape[1]) * 4 for k in range(self.num_levels))
        return {"voxels": int(self.seen.shape[1]), "voxels_by_cameras_seeing": histogram, "taps_per_frame": taps}

    def forward(
        self,
        features: torch.Tensor,
        intrinsics: torch.Tensor | None = None,
        camera_from_ego: torch.Tensor | None = None,
        distortion: torch.Tensor | None = None,
        camera_valid: torch.Tensor | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Lift features [B,N,C,h,w] of the baked rig's cameras; besides them only ``camera_valid`` [B,N] and, for the
        motion correction, ``camera_from_ego`` [B,N,4,4] are read."""
        batch, cams, channels, height, width = features.shape
        if (cams, height, width) != (self.num_cameras, *self.feature_hw):
            raise ValueError(
                f"BakedBevLifting: features [B,N,C,h,w]: expected N={self.num_cameras} cameras at "
                f"{self.feature_hw[0]}x{self.feature_hw[1]} (the baked rig), found {list(features.shape)}"
            )
        if camera_valid is None:
            camera_valid = features.new_ones(batch, cams)
        valid = camera_valid.to(features.dtype)
        table = features.reshape(batch, cams, channels, height * width) * valid.reshape(batch, cams, 1, 1)
        table = table.permute(0, 1, 3, 2).reshape(batch, cams * height * width, channels)
        table = torch.cat([table, table.new_zeros(batch, 1, channels)], dim=1)  # the zero row
        motion = None
        if self.correct_motion and camera_from_ego is not None:
            # G = ego_from_camera(static) @ camera_from_ego - I, top three rows (elementwise: no MatMul to quantize)
            product = (self.ego_from_camera.unsqueeze(0).unsqueeze(-1) * camera_from_ego.float().unsqueeze(2)).sum(3)
            motion = (product - torch.eye(4, dtype=product.dtype))[:, :, :3, :].reshape(batch, cams, 12)  # [B,N,12]
        total = None
        for k in range(self.num_levels):
            index, weight = getattr(self, f"level{k}_index"), getattr(self, f"level{k}_weight")
            weight = weight.unsqueeze(0)  # [1,4,Q]
            if motion is not None:
                g = motion.index_select(1, getattr(self, f"level{k}_camera"))  # [B,Q,12]
                shift = (getattr(self, f"level{k}_jacobian").unsqueeze(0) * g.unsqueeze(2)).sum(-1)  # [B,Q,2]
                dweight = getattr(self, f"level{k}_dweight")  # [2,4,Q]
                weight = weight + dweight[0] * shift[:, None, :, 0] + dweight[1] * shift[:, None, :, 1]  # [B,4,Q]
            part = None
            for corner in range(4):
                tap = table.index_select(1, index[corner]) * weight[:, corner].unsqueeze(-1)  # [B,Q,C]
                part = tap if part is None else part + tap
            if k > 0:
                part = torch.cat([part, part.new_zeros(batch, 1, channels)], dim=1)
                part = part.index_select(1, getattr(self, f"level{k}_scatter"))
            total = part if total is None else total + part
        count = (self.seen.unsqueeze(0) * valid.unsqueeze(-1)).sum(dim=1).clamp(min=1.0)  # [B,P]
        mean = total / count.unsqueeze(-1)  # [B,P,C]
        num_z, rows, cols = self.grid_shape
        return mean.permute(0, 2, 1).reshape(batch, channels * num_z, rows, cols)
