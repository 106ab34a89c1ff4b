"""The tiled, batched engine: tiles agree with the whole image; modes and bit depths survive."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restoration.engine import EngineConfig, Restorer
from restoration.registry import create_model


def model(identity: bool = False):
    torch.manual_seed(0)
    m = create_model("unet_restorer_test")
    if not identity:  # an untrained model is the identity; give it something to do
        torch.nn.init.normal_(m.image_head.weight, std=0.3)
    return m


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:300, :260])


def test_tiled_and_untiled_agree(photo):
    net = model()
    whole = Restorer(net, EngineConfig(tile=1024, overlap=0))
    tiled = Restorer(net, EngineConfig(tile=128, overlap=48, batch_tiles=3))
    as_float = photo.astype(np.float32) / 255
    a, b = whole.restore([as_float])[0], tiled.restore([as_float])[0]
    assert np.abs(a.image - as_float).mean() > 0.01, "the model must change the image for this test to mean anything"
    assert np.abs(a.image - b.image).max() < 1 / 255
    assert np.abs(a.mask - b.mask).max() < 1 / 255
    a8, b8 = whole.restore([photo])[0].image, tiled.restore([photo])[0].image
    assert np.abs(a8.astype(int) - b8.astype(int)).max() <= 1


@pytest.mark.parametrize("dtype, top", [(np.uint8, 255), (np.uint16, 65535)])
def test_identity_model_returns_every_value_unchanged(dtype, top):
    rng = np.random.default_rng(0)
    image = rng.integers(0, top + 1, size=(70, 90, 3), dtype=np.int64).astype(dtype)
    out = Restorer(model(identity=True), EngineConfig(tile=64, overlap=16)).restore([image])[0].image
    assert out.dtype == dtype and out.shape == image.shape
    assert np.array_equal(out, image)  # no loss of bit depth on the way through float32


def test_grey_rgba_and_masks(photo):
    grey = photo.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([photo, np.linspace(0, 255, photo.shape[1], dtype=np.uint8)[None, :].repeat(photo.shape[0], 0)])
    engine = Restorer(model(), EngineConfig(tile=96, overlap=32))
    g, g1, a = engine.restore([grey, grey[..., None], rgba])
    assert g.image.shape == grey.shape and g.image.dtype == np.uint8
    assert g1.image.shape == (*grey.shape, 1)
    assert a.image.shape == rgba.shape and np.array_equal(a.image[..., 3], rgba[..., 3])  # alpha kept
    assert g.mask.shape == grey.shape and 0 <= g.mask.min() and g.mask.max() <= 1


def test_images_of_different_sizes_in_one_call_match_one_at_a_time(photo):
    engine = Restorer(model(), EngineConfig(tile=64, overlap=16, batch_tiles=5))
    images = [photo[:50, :60], photo[:64, :64], photo[:50, :60].copy(), photo]
    together = engine.restore(images)
    for image, result in zip(images, together, strict=True):
        alone = engine.restore([image])[0]
        assert result.image.shape == image.shape
        assert np.abs(result.image.astype(int) - alone.image.astype(int)).max() <= 1


def test_bad_inputs_are_refused():
    engine = Restorer(model(identity=True), EngineConfig(tile=64, overlap=16))
    with pytest.raises(ValueError, match="unsupported image shape"):
        engine.restore([np.zeros((8, 8, 2), np.uint8)])
    with pytest.raises(TypeError, match="unsupported pixel type"):
        engine.restore([np.zeros((8, 8, 3), np.int32)])
    with pytest.raises(ValueError, match="overlap"):
        EngineConfig(tile=64, overlap=32)
