"""Test settings: one torch thread (the tests are small; CI has 2 cores), headless matplotlib."""

import os

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every matplotlib figure a test opened (pyplot keeps them alive otherwise)."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


# The files that take longest, measured (`pytest --durations`, 2026-12-03, one process): the book build
# about 6 minutes, the critique's quick claims about 9, the quick Fig. 2/5 claims about 3. `make test` runs
# the files in parallel processes (pytest-xdist, `--dist loadfile`), each file whole in one process, handed
# out in collection order; starting these first keeps one of them from starting last and running alone.
LONGEST_FIRST = ("test_tschannen.py", "test_book.py", "test_quick_claims.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: within a file, and among the other files, the order is unchanged
