"""Test configuration: runtime type checking on, no network, small deterministic runs."""

import os

# Both must be set before jepa_blocks (and timm / huggingface_hub) are imported.
os.environ.setdefault("JEPA_BLOCKS_TYPECHECK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# One thread: the tests run many tiny ops, where two threads on two (possibly busy) cores are
# several times slower than one, and results stay bit-reproducible.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
