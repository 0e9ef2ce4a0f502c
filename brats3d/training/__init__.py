"""Training: data split and caching, the loop with AMP and DDP, checkpoints and exact resume."""
