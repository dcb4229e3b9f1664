"""The Predictor's forward passes run at few batch lengths (a short batch padded up to a
multiple of PAD_TO): the CPU kernels keep what they prepare for each new length, so a long
run that met every length below the batch size grew its actors' memory. Padding must not
change any real image's prediction."""

import numpy as np
import pytest

from vitpipeline.demo import save_tiny_vit
from vitpipeline.rules.pixels import geometry_of, load_processor
from vitpipeline.stages.infer import CPU_CHUNK, Predictor, padded_length


def test_padded_length_rounds_up_to_a_multiple():
    assert [padded_length(n) for n in (1, 7, 8, 9, 13, 16, 63, 64)] == [8, 8, 8, 16, 16, 16, 64, 64]


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    model = save_tiny_vit(tmp_path_factory.mktemp("tiny"))
    p = Predictor(model, geometry_of(load_processor(model)), precision="fp32", top_k=3)
    lengths = []
    p._model.register_forward_pre_hook(
        lambda _m, _args, kwargs: lengths.append(len(kwargs["pixel_values"])), with_kwargs=True
    )
    return p, lengths


def _batch(images: np.ndarray) -> dict:
    n = len(images)
    return {
        "path": np.array([f"img{i}" for i in range(n)], dtype=object),
        "label": np.array(["x"] * n, dtype=object),
        "image": images,
    }


def test_a_short_batch_runs_padded_and_predicts_as_if_alone(predictor):
    p, lengths = predictor
    side = p._geometry.height
    images = np.random.default_rng(0).integers(0, 255, (13, side, side, 3), dtype=np.uint8)
    lengths.clear()
    short = p(_batch(images))
    assert lengths == [16]
    assert len(short["path"]) == len(short["top_labels"]) == 13
    for i in (0, 6, 12):  # each image alone (padded to 8) gets the same labels and scores
        alone = p(_batch(images[i : i + 1]))
        assert list(alone["top_labels"][0]) == list(short["top_labels"][i])
        np.testing.assert_allclose(alone["top_scores"][0], short["top_scores"][i], rtol=1e-4, atol=1e-6)
    assert lengths[1:] == [8, 8, 8]


def test_a_long_batch_runs_on_cpu_in_chunks_and_predicts_as_if_whole(predictor):
    """On CPU a batch runs CPU_CHUNK images a pass (activations that stay in the caches), and
    each image gets the labels and scores it gets in a pass of its own length."""
    p, lengths = predictor
    side = p._geometry.height
    images = np.random.default_rng(1).integers(0, 255, (45, side, side, 3), dtype=np.uint8)
    lengths.clear()
    whole = p(_batch(images))
    assert lengths == [CPU_CHUNK, CPU_CHUNK, 48 - 2 * CPU_CHUNK]
    for i in (0, 20, 44):
        alone = p(_batch(images[i : i + 1]))
        assert list(alone["top_labels"][0]) == list(whole["top_labels"][i])
        np.testing.assert_allclose(alone["top_scores"][0], whole["top_scores"][i], rtol=1e-4, atol=1e-6)


def test_bf16_inference_runs_in_bf16_weights_and_scores_as_fp32_does(predictor, tmp_path):
    """bf16 casts the weights themselves, on CPU as on GPU (no fp32 weights under autocast),
    and the top labels' scores stay within bf16's rounding of the fp32 ones."""
    import torch

    p32, _ = predictor
    model = save_tiny_vit(tmp_path / "tiny")
    p16 = Predictor(model, p32._geometry, precision="bf16", top_k=3)
    assert {t.dtype for t in p16._model.parameters()} == {torch.bfloat16}
    side = p32._geometry.height
    images = np.random.default_rng(1).integers(0, 255, (16, side, side, 3), dtype=np.uint8)
    a, b = p32(_batch(images)), p16(_batch(images))
    np.testing.assert_allclose(np.stack(b["top_scores"]), np.stack(a["top_scores"]), atol=0.02)
