"""Networks: a small registry over MONAI's 3D segmentation networks."""

from brats3d.models.registry import NETWORKS, build_network, output_channels

__all__ = ["NETWORKS", "build_network", "output_channels"]
