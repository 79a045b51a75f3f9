"""Test settings: one torch thread (the tests are small; CI has 2 cores), headless matplotlib."""

import os

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")
