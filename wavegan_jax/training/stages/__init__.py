"""One module per stage, each with its `make_spec(config, ...)`.

autoencoders: the acoustic and visual autoencoders (stages 1 and 2);
generator: the audio-visual generator on their encoders (stage 3);
wavegan: the unconditional WaveGAN / SpecGAN; judges: the digit and
speaker classifiers the evaluation scores with.
"""
