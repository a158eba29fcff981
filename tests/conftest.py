import os
import sys
from pathlib import Path

import pytest
import torch

# Tests never reach the Hub; threads are pinned so that timing noise from a shared machine stays small.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
