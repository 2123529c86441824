"""Fixtures for every training test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tests share a small machine; see TrainConfig.threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
