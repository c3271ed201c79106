"""Training: train state, data-parallel steps, checkpoints and stage runners."""
