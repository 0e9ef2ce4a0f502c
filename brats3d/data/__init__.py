"""Datasets on disk: layouts, label conventions, reading and validating NIfTI, synthetic phantoms."""
