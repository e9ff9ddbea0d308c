"""Layer 3, training: the one trainer, its runs, checkpoints, run log, CPU kernels and DDP."""
