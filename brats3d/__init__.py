"""brats3d: 3D brain-tumour segmentation in multi-modal MRI (train, predict, evaluate)."""

__version__ = "0.1.0"
