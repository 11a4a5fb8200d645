"""Training data over drive clips: a frame cache (decode once, memory-map), windows of T frames x all cameras,
geometry-consistent augmentation, padded collation, and the ``ClipDataModule`` (Lightning).

Import submodules directly (``perception.data.datamodule``); this package imports nothing heavy.
"""
