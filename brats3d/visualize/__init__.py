"""Pictures a person looks at: three-plane GIFs and a montage with tumour overlays."""

from brats3d.visualize.overlays import write_case_pictures, write_montage

__all__ = ["write_case_pictures", "write_montage"]
