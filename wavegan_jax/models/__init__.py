"""Flax Linen models: WaveGAN, the acoustic and visual models, the generator,
discriminators and the evaluation judges."""
