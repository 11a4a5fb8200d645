"""Importers that turn other data layouts into drive clips: nuScenes (mmdet3d info files or raw tables), plain videos,
and chessboard camera calibration. Modules are imported where used so ``import perception`` stays cheap."""
