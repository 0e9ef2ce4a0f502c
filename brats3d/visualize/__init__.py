"""What a person looks at: three-plane GIFs and a montage with tumour overlays, and label tables for viewers."""

from brats3d.visualize.label_tables import write_label_tables
from brats3d.visualize.overlays import write_case_pictures, write_montage

__all__ = ["write_case_pictures", "write_label_tables", "write_montage"]
