"""Training: train state, data-parallel steps, checkpoints, the loop and the
stage runner; one module per stage in `stages/`."""
