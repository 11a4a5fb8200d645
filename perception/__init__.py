"""fleetvision perception: drive clips, camera rigs, importers, the synthetic world, visualisation (torch-free core),
plus multi-camera video models, Lightning training and metrics (torch parts, imported only where used)."""

__version__ = "0.1.0"

import os as _os

# Damaged videos are reported by our own errors; keep FFmpeg's decoder chatter off stderr.
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
