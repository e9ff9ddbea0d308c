"""Shared test settings."""
import torch

# The tiny CPU networks of the tests are fastest on one thread; with more threads, a
# pipeline run on the same cores (dvc repro) makes them spin-wait and run several times slower.
torch.set_num_threads(1)
