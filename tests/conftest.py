"""Test-session settings: never reach a model hub, keep torch to the machine's cores."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # must be set before huggingface_hub is imported
os.environ.setdefault("TRUST_REMOTE_CODE", "0")


import pytest


@pytest.fixture(scope="session")
def dataset_root(tmp_path_factory):
    """A small generated MVTec-layout set: 16 normal training images, 4 good and 10 defective test images, 64 px."""
    from isstad_plugin.data import generate_dataset

    root = tmp_path_factory.mktemp("data")
    generate_dataset(root, "tiles", n_train=16, n_test_good=4, n_test_defect=2, image_size=64, seed=0)
    return root
