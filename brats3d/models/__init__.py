"""Models: MONAI networks by name, their losses, the checkpoint format, and where/in which precision they run."""

from brats3d.models.registry import NETWORKS, build_network, check_network

__all__ = ["NETWORKS", "build_network", "check_network"]
