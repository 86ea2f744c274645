"""Test configuration: runtime type checking on, no network, small deterministic runs."""

import os

# Both must be set before jepa_blocks (and timm / huggingface_hub) are imported.
os.environ.setdefault("JEPA_BLOCKS_TYPECHECK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
