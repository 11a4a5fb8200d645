"""fleetvision auto-labelling: folders of video in, tracked and offline-refined pseudo-labels out."""
