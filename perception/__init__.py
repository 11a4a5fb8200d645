"""fleetvision perception: drive clips, camera rigs, importers, the synthetic world, visualisation (torch-free core),
plus multi-camera video models, Lightning training and metrics (torch parts, imported only where used)."""

__version__ = "0.1.0"
