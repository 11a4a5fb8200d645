"""BevVideoNet: multi-camera video model (image backbone + FPN, Simple-BEV lifting, BEV encoder,
explicit-state temporal fusion, switchable BEV-detection / BEV-segmentation / per-camera 2D heads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from perception.labels import DRIVING_CLASSES
from perception.model_input import MODEL_COLOR
from perception.model_input import PIXEL_MEAN_RGB_255 as IMAGENET_MEAN_255
from perception.model_input import PIXEL_STD_RGB_255 as IMAGENET_STD_255
from perception.models.backbones import ConvBnRelu, ImageEncoder
from perception.models.heads import BEV_REGRESSION, BevDetectionHead, Detection2dHead, ResBlock, SegmentationHead
from perception.models.temporal import ConvGRUFusion, warp_bev
from perception.models.view_transform import BevLifting

INPUT_NAMES = (
    "images",
    "intrinsics",
    "camera_from_ego",
    "distortion",
    "camera_valid",
    "prev_state",
    "prev_from_curr",
    "state_valid",
)
DUMMY_STATE_SHAPE = (1, 1, 1)


def _as_list(classes: Sequence[str] | None) -> list[str] | None:
    return None if classes is None else [str(c) for c in classes]


class BevVideoNet(nn.Module):
    """Multi-camera BEV video perception model; see ``perception.models`` for the full input/output contract."""

    def __init__(
        self,
        *,
        backbone: str = "resnet18",
        weights_path: str | None = None,
        backbone_stages: int = 4,
        frozen_stages: int = 0,
        image_channels: int = 64,
        image_stride: int = 8,
        image_size: Sequence[int] = (224, 384),
        x_range: Sequence[float] = (-25.0, 25.0),
        y_range: Sequence[float] = (-25.0, 25.0),
        resolution: float = 0.5,
        z_range: Sequence[float] = (-1.0, 3.0),
        num_heights: int = 8,
        bev_channels: int = 64,
        bev_blocks: int = 2,
        head_channels: int = 64,
        head_stride: int = 1,
        detection3d_classes: Sequence[str] | None = DRIVING_CLASSES,
        segmentation_classes: Sequence[str] | None = ("drivable", "lane"),
        detection2d_classes: Sequence[str] | None = None,
        temporal: bool = True,
        pixel_mean: Sequence[float] = IMAGENET_MEAN_255,
        pixel_std: Sequence[float] = IMAGENET_STD_255,
    ) -> None:
        super().__init__()
        self._config: dict[str, Any] = {
            "backbone": backbone,
            "weights_path": weights_path,
            "backbone_stages": int(backbone_stages),
            "frozen_stages": int(frozen_stages),
            "image_channels": int(image_channels),
            "image_stride": int(image_stride),
            "image_size": [int(v) for v in image_size],
            "x_range": [float(v) for v in x_range],
            "y_range": [float(v) for v in y_range],
            "resolution": float(resolution),
            "z_range": [float(v) for v in z_range],
            "num_heights": int(num_heights),
            "bev_channels": int(bev_channels),
            "bev_blocks": int(bev_blocks),
            "head_channels": int(head_channels),
            "head_stride": int(head_stride),
            "detection3d_classes": _as_list(detection3d_classes),
            "segmentation_classes": _as_list(segmentation_classes),
            "detection2d_classes": _as_list(detection2d_classes),
            "temporal": bool(temporal),
            "pixel_mean": [float(v) for v in pixel_mean],
            "pixel_std": [float(v) for v in pixel_std],
        }
        cfg = self._config
        self._check_config()
        self.x_range = (cfg["x_range"][0], cfg["x_range"][1])
        self.y_range = (cfg["y_range"][0], cfg["y_range"][1])
        self.resolution = cfg["resolution"]
        self.register_buffer("pixel_mean", torch.tensor(cfg["pixel_mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg["pixel_std"]).view(1, 3, 1, 1), persistent=False)
        self.image_encoder = ImageEncoder(
            backbone=backbone,
            weights_path=weights_path,
            num_stages=cfg["backbone_stages"],
            frozen_stages=cfg["frozen_stages"],
            out_channels=cfg["image_channels"],
            out_stride=cfg["image_stride"],
        )
        self.has_bev = cfg["detection3d_classes"] is not None or cfg["segmentation_classes"] is not None
        self.has_temporal = self.has_bev and cfg["temporal"]
        if self.has_bev:
            self.lifting = BevLifting(
                x_range=self.x_range,
                y_range=self.y_range,
                resolution=self.resolution,
                z_range=(cfg["z_range"][0], cfg["z_range"][1]),
                num_heights=cfg["num_heights"],
            )
            self.bev_encoder = nn.Sequential(
                ConvBnRelu(cfg["image_channels"] * cfg["num_heights"], cfg["bev_channels"]),
                *(ResBlock(cfg["bev_channels"]) for _ in range(cfg["bev_blocks"])),
            )
        if self.has_temporal:
            self.fusion = ConvGRUFusion(cfg["bev_channels"])
        if cfg["detection3d_classes"] is not None:
            self.detection3d_head = BevDetectionHead(
                in_channels=cfg["bev_channels"],
                hidden=cfg["head_channels"],
                num_classes=len(cfg["detection3d_classes"]),
                stride=cfg["head_stride"],
            )
        if cfg["segmentation_classes"] is not None:
            self.segmentation_head = SegmentationHead(
                in_channels=cfg["bev_channels"],
                hidden=cfg["head_channels"],
                num_classes=len(cfg["segmentation_classes"]),
            )
        if cfg["detection2d_classes"] is not None:
            self.detection2d_head = Detection2dHead(
                in_channels=cfg["image_channels"],
                hidden=cfg["head_channels"],
                num_classes=len(cfg["detection2d_classes"]),
            )

    def _check_config(self) -> None:
        cfg = self._config
        where = "BevVideoNet"
        heads = ("detection3d_classes", "segmentation_classes", "detection2d_classes")
        if all(cfg[h] is None for h in heads):
            raise ValueError(f"{where}: at least one of {heads} must be a class list, found all None")
        for h in heads:
            if cfg[h] is not None and len(cfg[h]) == 0:
                raise ValueError(f"{where}: {h} must be None or non-empty, found []")
        for field in ("x_range", "y_range", "z_range"):
            low, high = cfg[field]
            if not high > low:
                raise ValueError(f"{where}: {field} must be (min, max) with max > min, found {cfg[field]}")
        rows, cols = self.bev_shape_of(cfg)
        stride = cfg["head_stride"]
        if cfg["detection3d_classes"] is not None and (rows % stride or cols % stride or stride < 1):
            raise ValueError(f"{where}: head_stride must divide the BEV shape {(rows, cols)}, found {stride}")
        if len(cfg["image_size"]) != 2:
            raise ValueError(f"{where}: image_size must be (height, width), found {cfg['image_size']}")

    @staticmethod
    def bev_shape_of(cfg: dict[str, Any]) -> tuple[int, int]:
        """(rows, cols) of the BEV grid described by a config dict."""
        res = cfg["resolution"]
        return (
            round((cfg["x_range"][1] - cfg["x_range"][0]) / res),
            round((cfg["y_range"][1] - cfg["y_range"][0]) / res),
        )

    # ----------------------------------------------------------------- description
    def config(self) -> dict[str, Any]:
        """Constructor kwargs (plain JSON/YAML types); ``BevVideoNet(**model.config())`` rebuilds the model."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self._config.items()}

    @classmethod
    def from_config(cls, config: dict[str, Any], *, load_backbone_weights: bool = False) -> BevVideoNet:
        """Build from ``config()`` output (a checkpoint's kwargs). The checkpoint's state_dict overwrites the
        backbone anyway, so ``weights_path`` is not read (the file may not exist here) unless asked; it stays
        in ``config()`` as provenance."""
        model = cls(**{**config, "weights_path": config.get("weights_path") if load_backbone_weights else None})
        model._config["weights_path"] = config.get("weights_path")
        return model

    def bev_grid(self) -> dict[str, float]:
        """BEV grid (``BevGrid.from_dict``-compatible) of the state and segmentation outputs."""
        return {
            "x_min": self.x_range[0],
            "x_max": self.x_range[1],
            "y_min": self.y_range[0],
            "y_max": self.y_range[1],
            "resolution": self.resolution,
        }

    def head_grid(self) -> dict[str, float]:
        """BEV grid of the 3D detection outputs (cell = resolution * head_stride)."""
        return {**self.bev_grid(), "resolution": self.resolution * self._config["head_stride"]}

    def state_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of ``prev_state`` / ``state``; (1, 1, 1) when the model has no temporal BEV state."""
        if not self.has_temporal:
            return DUMMY_STATE_SHAPE
        return (self._config["bev_channels"], *self.bev_shape_of(self._config))

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """Zero state [B, *state_shape()] on the model's device (pass with state_valid=0)."""
        return torch.zeros(batch_size, *self.state_shape(), device=self.pixel_mean.device)

    def output_names(self) -> list[str]:
        """Output keys in the order ``forward`` returns them (= ONNX output order)."""
        names: list[str] = []
        if self._config["detection3d_classes"] is not None:
            names += ["heatmap", *BEV_REGRESSION]
        if self._config["segmentation_classes"] is not None:
            names.append("segmentation")
        if self._config["detection2d_classes"] is not None:
            names += ["det2d_heatmap", "det2d_box"]
        return [*names, "state"]

    def metadata(self) -> dict[str, Any]:
        """JSON-able description for export/runtime: config, grids, I/O names, normalisation, strides."""
        return {
            "config": self.config(),
            "input_names": list(INPUT_NAMES),
            "output_names": self.output_names(),
            "bev_grid": self.bev_grid() if self.has_bev else None,
            "head_grid": self.head_grid() if self._config["detection3d_classes"] is not None else None,
            "state_shape": list(self.state_shape()),
            "image_stride": self._config["image_stride"],
            "pixel_mean": self._config["pixel_mean"],
            "pixel_std": self._config["pixel_std"],
            "input_color": MODEL_COLOR,
        }

    # ----------------------------------------------------------------- building blocks
    def _image_features(self, images: torch.Tensor) -> torch.Tensor:
        """images [M,N,3,H,W] RGB 0..255 -> features [M,N,C,H/s,W/s]."""
        m, n = images.shape[0], images.shape[1]
        flat = images.reshape(m * n, 3, images.shape[3], images.shape[4])
        features = self.image_encoder((flat - self.pixel_mean) / self.pixel_std)
        return features.reshape(m, n, features.shape[1], features.shape[2], features.shape[3])

    def _bev_features(
        self, features, intrinsics, camera_from_ego, distortion, camera_valid, image_size
    ) -> torch.Tensor:
        lifted = self.lifting(features, intrinsics, camera_from_ego, distortion, camera_valid, image_size)
        return self.bev_encoder(lifted)

    def _fuse(self, bev, prev_state, prev_from_curr, state_valid, camera_valid) -> torch.Tensor:
        """The new state: ConvGRU of the current BEV features and the ego-motion-warped previous state; when no
        camera of a sample is valid (every image lost) the warped previous state is carried unchanged."""
        warped = warp_bev(
            prev_state, prev_from_curr, x_range=self.x_range, y_range=self.y_range, resolution=self.resolution
        )
        warped = warped * state_valid.to(warped.dtype).reshape(-1, 1, 1, 1)
        fused = self.fusion(bev, warped)
        seen = camera_valid.to(fused.dtype).sum(dim=-1).clamp(max=1.0).reshape(-1, 1, 1, 1)  # 1 if any camera
        return seen * fused + (1.0 - seen) * warped

    def _bev_heads(self, bev: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self._config["detection3d_classes"] is not None:
            out.update(self.detection3d_head(bev))
        if self._config["segmentation_classes"] is not None:
            out["segmentation"] = self.segmentation_head(bev)
        return out

    def _det2d_heads(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        m, n = features.shape[0], features.shape[1]
        heatmap, box = self.detection2d_head(features.reshape(m * n, *features.shape[2:]))
        return {
            "det2d_heatmap": heatmap.reshape(m, n, *heatmap.shape[1:]),
            "det2d_box": box.reshape(m, n, *box.shape[1:]),
        }

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        images: torch.Tensor,
        intrinsics: torch.Tensor,
        camera_from_ego: torch.Tensor,
        distortion: torch.Tensor,
        camera_valid: torch.Tensor,
        prev_state: torch.Tensor,
        prev_from_curr: torch.Tensor,
        state_valid: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """One time step. Shapes: images [B,N,3,H,W] RGB 0..255; intrinsics [B,N,3,3] (for HxW images);
        camera_from_ego [B,N,4,4]; distortion [B,N,6] (lens coefficients + lens id, radtan or fisheye);
        camera_valid [B,N] (1/0);
        prev_state [B,*state_shape()]; prev_from_curr [B,4,4]; state_valid [B] (0 = reset).
        Returns a dict of tensors keyed by ``output_names()``."""
        features = self._image_features(images)
        out: dict[str, torch.Tensor] = {}
        state = torch.zeros_like(prev_state)  # dummy unless the model carries a temporal BEV state
        if self.has_bev:
            bev = self._bev_features(features, intrinsics, camera_from_ego, distortion, camera_valid, images.shape[-2:])
            out.update(self.bev_step(bev, camera_valid, prev_state, prev_from_curr, state_valid))
            state = out.pop("state")
        if self._config["detection2d_classes"] is not None:
            out.update(self._det2d_heads(features))
        out["state"] = state
        return out

    def encode_bev(
        self,
        images: torch.Tensor,
        intrinsics: torch.Tensor,
        camera_from_ego: torch.Tensor,
        distortion: torch.Tensor,
        camera_valid: torch.Tensor,
    ) -> torch.Tensor:
        """The BEV features of one time step before temporal fusion (inputs as ``forward``'s): a function of the
        frame's images and geometry alone, so a pass that visits a frame again (an offline teacher's time-reversed
        pass) can keep them instead of running the image encoder twice. ``bev_step`` completes the step."""
        if not self.has_bev:
            raise ValueError("encode_bev: the model has no BEV output (no 3D detection or segmentation head)")
        features = self._image_features(images)
        return self._bev_features(features, intrinsics, camera_from_ego, distortion, camera_valid, images.shape[-2:])

    def bev_step(
        self,
        bev: torch.Tensor,
        camera_valid: torch.Tensor,
        prev_state: torch.Tensor,
        prev_from_curr: torch.Tensor,
        state_valid: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Temporal fusion and the BEV heads on ``encode_bev``'s features: ``forward``'s BEV outputs and ``state``
        for the same inputs (the same operations, so the same numbers), without the per-camera 2D head."""
        state = torch.zeros_like(prev_state)
        if self.has_temporal:
            bev = state = self._fuse(bev, prev_state, prev_from_curr, state_valid, camera_valid)
        return {**self._bev_heads(bev), "state": state}

    def forward_window(
        self,
        images: torch.Tensor,
        intrinsics: torch.Tensor,
        camera_from_ego: torch.Tensor,
        distortion: torch.Tensor,
        camera_valid: torch.Tensor,
        prev_state: torch.Tensor,
        prev_from_curr: torch.Tensor,
        state_valid: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """A T-frame window: inputs carry a T dim after B ([B,T,N,3,H,W], [B,T,N,3,3], [B,T,N,4,4], [B,T,N,6],
        [B,T,N], prev_from_curr [B,T,4,4], state_valid [B,T]); prev_state [B,*state_shape()] is the state
        before frame 0. Images go through the backbone as one B*T*N batch; fusion loops over T.
        Returns every output with a T dim: out[k][:, t] == forward(frame t)[k]; out["state"][:, -1] is final."""
        b, t = images.shape[0], images.shape[1]

        def merge(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(b * t, *x.shape[2:])

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(b, t, *x.shape[1:])

        features = self._image_features(merge(images))
        out: dict[str, torch.Tensor] = {}
        states_out = torch.zeros_like(prev_state).unsqueeze(1).expand(b, t, *prev_state.shape[1:])  # dummy
        if self.has_bev:
            bev = self._bev_features(
                features,
                merge(intrinsics),
                merge(camera_from_ego),
                merge(distortion),
                merge(camera_valid),
                images.shape[-2:],
            )
            if self.has_temporal:
                bev = split(bev)
                state = prev_state
                states = []
                for step in range(t):
                    state = self._fuse(
                        bev[:, step], state, prev_from_curr[:, step], state_valid[:, step], camera_valid[:, step]
                    )
                    states.append(state)
                states_out = torch.stack(states, dim=1)
                bev = merge(states_out)
            out.update({k: split(v) for k, v in self._bev_heads(bev).items()})
        if self._config["detection2d_classes"] is not None:
            out.update({k: split(v) for k, v in self._det2d_heads(features).items()})
        out["state"] = states_out
        return out
