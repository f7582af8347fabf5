"""describe(): shapes, rotations, batching, preprocessing owned by the model config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import model
from model.config import ModelConfig


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    return model.create_model("astroloc-nano")


@pytest.fixture()
def photos():
    rng = np.random.default_rng(7)
    sizes = [(90, 160, 3), (112, 112, 3), (300, 200, 3)]
    return [rng.integers(0, 256, size, dtype=np.uint8) for size in sizes]


def test_shape_dtype_and_unit_norm(nano, photos):
    descriptors = model.describe(nano, photos)
    assert descriptors.shape == (3, 4, 256) and descriptors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=-1), 1.0, atol=1e-5)
    assert model.describe(nano, photos, rotations=(0,)).shape == (3, 1, 256)


def test_rotation_r_describes_the_image_turned_counter_clockwise(nano):
    tile = np.random.default_rng(1).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    turned = np.ascontiguousarray(np.rot90(tile))  # 90 degrees counter-clockwise
    descriptors = model.describe(nano, [tile, turned], rotations=(0, 90, 180, 270))
    for r in range(4):
        np.testing.assert_allclose(descriptors[1, r], descriptors[0, (r + 1) % 4], atol=1e-5)
    # The four views of a random image really differ (otherwise the test above proves nothing).
    assert np.abs(descriptors[0, 0] - descriptors[0, 1]).max() > 1e-3
    wrapped_angles = model.describe(nano, [tile], rotations=(-90, 450))[0]
    np.testing.assert_allclose(wrapped_angles, descriptors[0, [3, 1]], atol=1e-5)


def test_batch_size_does_not_change_descriptors(nano, photos):
    one_at_a_time = model.describe(nano, photos, batch_size=1)
    all_at_once = model.describe(nano, photos, batch_size=64)
    np.testing.assert_allclose(one_at_a_time, all_at_once, atol=1e-5)


def test_input_forms_agree(nano, photos):
    array = photos[1]
    expected = model.describe(nano, [array])
    np.testing.assert_allclose(model.describe(nano, Image.fromarray(array)), expected, atol=1e-6)
    np.testing.assert_allclose(model.describe(nano, array[None]), expected, atol=1e-6)  # (N, H, W, 3)
    rgba = np.concatenate([array, np.full((112, 112, 1), 255, np.uint8)], axis=2)
    np.testing.assert_allclose(model.describe(nano, rgba), expected, atol=1e-6)
    np.testing.assert_allclose(model.describe(nano, nano.preprocess(array)), expected, atol=1e-6)
    grey = array[:, :, 0]
    np.testing.assert_allclose(
        model.describe(nano, grey), model.describe(nano, np.repeat(grey[:, :, None], 3, axis=2)), atol=1e-6
    )


def test_preprocessing_follows_the_model_config():
    config = ModelConfig(arch="x", input_size=4, descriptor_dim=1, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    white = np.full((4, 4, 3), 255, np.uint8)
    batch = model.preprocess(white, config)
    assert batch.shape == (1, 3, 4, 4) and batch.dtype == torch.float32
    torch.testing.assert_close(batch[0, :, 0, 0], torch.tensor([1.0, 2.0, 1.0]))
    resized = model.preprocess(np.zeros((30, 50, 3), np.uint8), config)
    assert resized.shape == (1, 3, 4, 4)
    black = torch.tensor([-1.0, -2.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    torch.testing.assert_close(resized, black)


def test_eval_mode_is_used_and_training_mode_restored(nano, photos):
    expected = model.describe(nano, photos[:1])
    nano.train()  # SALAD dropout would make descriptors random
    try:
        np.testing.assert_allclose(model.describe(nano, photos[:1]), expected, atol=1e-6)
        assert nano.training
    finally:
        nano.eval()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": []}, "no images"),
        ({"images": np.zeros((8, 8, 3), np.float64)}, r"shape \(N, 3, 112, 112\)"),
        ({"images": [np.zeros((8, 8, 3), np.int32)]}, "must be uint8"),
        ({"images": [np.zeros((8, 8, 5), np.uint8)]}, r"\(H, W, 3\)"),
        ({"images": [np.zeros((0, 8, 3), np.uint8)]}, "empty image"),
        ({"images": "photo.jpg"}, "PIL images or uint8 arrays"),
        ({"images": [np.zeros((8, 8, 3), np.uint8)], "rotations": (45,)}, "multiples of 90"),
        ({"images": [np.zeros((8, 8, 3), np.uint8)], "rotations": ()}, "non-empty"),
        ({"images": [np.zeros((8, 8, 3), np.uint8)], "batch_size": 0}, "batch_size"),
    ],
)
def test_bad_input_is_a_clear_value_error(nano, kwargs, message):
    with pytest.raises(ValueError, match=message):
        model.describe(nano, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(photos):
    net = model.create_model("astroloc-nano")
    on_cpu = model.describe(net, photos)
    on_gpu = model.describe(net.cuda(), photos)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-4)
