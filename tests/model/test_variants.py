"""The paper's ablation Models I-VIII and the full model: each trains and produces what it should."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import seed_everything

from isstad_plugin.model.variants import VARIANTS
from tests.helpers import engine_for, small_datamodule, tiny_isstad


def _trained(tmp_path, dataset_root, name):
    seed_everything(0)
    variant = VARIANTS[name]
    model = tiny_isstad(variant=name, stage1_epochs=1 if variant.pretrain and variant.finetune else None)
    start = {k: v.clone() for k, v in model.model.encoder.state_dict().items()}
    engine = engine_for(tmp_path, max_epochs=2)
    engine.fit(model, datamodule=small_datamodule(dataset_root))
    encoder_changed = any(not torch.equal(v, start[k]) for k, v in model.model.encoder.state_dict().items())
    return engine, model, encoder_changed


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_trains_and_scores_with_its_own_maps(tmp_path, dataset_root, name):
    variant = VARIANTS[name]
    engine, model, encoder_changed = _trained(tmp_path, dataset_root, name)
    assert model.stage == (2 if variant.finetune else 1)
    assert model.model.encoder_frozen == (variant.pretrain and variant.finetune)
    assert encoder_changed, "the encoder never trained"  # stage 1, or end-to-end training without pre-training
    model.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = model.model.anomaly_maps(images)
    uses_error = variant.map_source in ("reconstruction", "fusion")
    uses_probability = variant.map_source in ("classification", "fusion")
    assert (maps.error is not None) == uses_error
    assert (maps.probability is not None) == uses_probability
    results = engine.test(model, datamodule=small_datamodule(dataset_root))[0]
    assert 0.0 <= results["image_AUROC"] <= 1.0


def test_loss_terms_follow_the_variant():
    assert tiny_isstad(variant="IV").loss_weights.mse == 0.0
    assert tiny_isstad(variant="VIII").loss_weights.ssim == 0.0
    assert tiny_isstad(variant="VII").loss_weights.classification == 0.0
    full = tiny_isstad(variant="full").loss_weights
    assert full.mse > 0 and full.ssim > 0 and full.classification > 0


def test_model_one_scores_masked_inputs_deterministically(tmp_path, dataset_root):
    _, model, _ = _trained(tmp_path, dataset_root, "I")
    network = model.model.eval()
    assert network.inference_mask_ratio == pytest.approx(0.75)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        first, second = network(images), network(images)
        masked = network.masked_reconstruction(images)
        unmasked = network.reconstruct_and_classify(images, with_classifier=False).reconstruction
    assert torch.equal(first.anomaly_map, second.anomaly_map)
    assert not torch.allclose(masked, unmasked), "Model I must reconstruct from masked inputs"


def test_model_one_masks_partition_the_patches():
    from isstad_plugin.model.patching import complementary_noise, random_masking

    tokens = torch.zeros(3, 64, 4)
    hidden_count = torch.zeros(3, 64)
    passes = complementary_noise(3, 64, 0.75, torch.Generator().manual_seed(0))
    assert len(passes) == 4
    for noise in passes:
        _, mask, _ = random_masking(tokens, 0.75, noise=noise)
        hidden_count += mask
    assert torch.all(hidden_count == 3), "every patch is visible in exactly one pass"


BUILDERS = {"variants.py", "config.py", "schedule.py"}
"""The variant table and the two builders that read its rows: the options (corruption, loss) and the schedule."""


def test_only_the_table_and_its_builders_read_the_variant():
    """The production path asks the built parts (schedule, corruption, loss weights, fusion), not the variant."""
    import ast
    from pathlib import Path

    import isstad_plugin

    package = Path(isstad_plugin.__file__).parent
    readers, name_tests = [], []
    for folder in ("model", "training", "corruption", "data"):
        for path in sorted((package / folder).glob("*.py")):
            tree = ast.parse(path.read_text())
            attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
            if path.name not in BUILDERS and attributes & {"variant", "variant_spec"}:
                readers.append(path.name)
            for node in ast.walk(tree):
                if path.name != "variants.py" and isinstance(node, ast.Compare):
                    constants = [c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)]
                    if "variant" in ast.unparse(node) and set(constants) & set(VARIANTS):
                        name_tests.append(f"{path.name}: {ast.unparse(node)}")
    assert readers == [], "modules that read the variant instead of the parts built from it"
    assert name_tests == [], "tests of a variant's name outside the variant table"
