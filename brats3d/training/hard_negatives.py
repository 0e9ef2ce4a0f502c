"""Hard-negative sampling: patches where the network currently predicts tumour that is not there are drawn again.

Why: on unseen scans the failures were confident false positives (cerebellum, skull base, ventricles) and enhancing
tumour predicted over a non-enhancing core. Uniform draws meet such anatomy rarely. Each training step already holds
the network's logits for its patches, so mining costs one comparison per step instead of whole-scan inference: a
patch whose false-positive voxels exceed ``HARD_SHARE`` of it joins its case's pool, a pooled patch that comes out
clean when drawn again leaves it, and the sampler (``transforms.sampling.RandTumourPatchd``) draws from the pool
with probability ``data.hard_negative_fraction``. The pool is part of the training state, so a resumed run replays
the same draws.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

import torch
from monai.transforms import Compose

from brats3d.data.targets import Target
from brats3d.transforms.sampling import RandTumourPatchd

Start = tuple[int, int, int]

# A patch is hard when its false-positive voxels (summed over the output channels) exceed this share of it: 0.1 %,
# 410 voxels (0.4 ml at 1 mm) of a 160x160x16 patch, the size of the smaller spurious blobs seen on unseen scans.
HARD_SHARE = 0.001
# At most this many hard patches per case, the most recently found kept: the pool follows the network as it learns.
POOL_SIZE = 32


def false_positive_voxels(logits: torch.Tensor, target: torch.Tensor, kind: Target) -> torch.Tensor:
    """Per patch of the batch, voxels predicted as a region (or tumour class) that the reference does not hold
    there, summed over the regions. A deeply supervised output (stacked levels) is judged at full resolution."""
    with torch.no_grad():
        if logits.dim() == target.dim() + 1:
            logits = logits[:, 0]
        if kind.sigmoid:
            wrong = (logits > 0) & (target < 0.5)
        else:
            predicted = logits.argmax(1, keepdim=True)
            wrong = (predicted > 0) & (predicted != target.long())
        return wrong.flatten(1).sum(1)


class HardPatchPool:
    """Per case, the patch starts (before augmentation) whose last draw held too many false positives."""

    def __init__(self, patch_voxels: int) -> None:
        self.min_voxels = max(1, round(HARD_SHARE * patch_voxels))
        self.pools: dict[str, OrderedDict[Start, int]] = {}

    def record(self, case_ids: Sequence[str], starts: torch.Tensor, wrong: torch.Tensor) -> None:
        """Add the batch's hard patches, refresh those found again and drop pooled ones that came out clean."""
        for case_id, start, count in zip(case_ids, starts.tolist(), wrong.tolist()):
            pool = self.pools.setdefault(case_id, OrderedDict())
            key = tuple(int(s) for s in start)
            pool.pop(key, None)
            if count >= self.min_voxels:
                pool[key] = int(count)
                while len(pool) > POOL_SIZE:
                    pool.popitem(last=False)

    def starts(self) -> dict[str, list[Start]]:
        """What the sampler draws from: each case's pooled starts."""
        return {case_id: list(pool) for case_id, pool in self.pools.items() if pool}

    def state(self) -> dict[str, list[list[int]]]:
        """Plain lists (start and count per patch), which a weights-only checkpoint load accepts."""
        return {case_id: [[*key, n] for key, n in pool.items()] for case_id, pool in self.pools.items()}

    def load_state(self, states: Iterable[Mapping[str, list[list[int]]]], case_ids: Iterable[str]) -> None:
        """Restore the pools of ``case_ids`` (this rank's cases) from saved states (DDP: one per rank)."""
        mine = set(case_ids)
        self.pools = {}
        for state in states:
            for case_id, rows in state.items():
                if case_id in mine:
                    self.pools[case_id] = OrderedDict((tuple(int(v) for v in row[:3]), int(row[3])) for row in rows)


def patch_sampler(chain: Compose) -> RandTumourPatchd:
    """The training chain's patch sampler, to which the pool is handed between epochs."""
    found = [t for t in chain.transforms if isinstance(t, RandTumourPatchd)]
    if not found:
        raise ValueError("the training chain has no RandTumourPatchd to draw hard patches")
    return found[0]
