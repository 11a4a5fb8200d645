"""Lightning training of the perception models: ``PerceptionModule``, callbacks, checkpoint export, LightningCLI.

Import submodules directly (``perception.training.module``); this package imports nothing heavy.
"""
