"""The tiled, batched engine: tiles agree with the whole image; modes and bit depths survive."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restoration.engine import EngineConfig, Restorer
from restoration.factory import create_model


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
    assert np.abs(a.image - as_float).mean() > 0.01, (
        "the model must change the image for this test to mean anything"
    )
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
    rgba = np.dstack(
        [photo, np.linspace(0, 255, photo.shape[1], dtype=np.uint8)[None, :].repeat(photo.shape[0], 0)]
    )
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


@pytest.mark.parametrize("length", [1, 63, 64, 65, 300, 1024, 1100, 6324])
@pytest.mark.parametrize("tile, overlap", [(64, 16), (512, 64), (768, 64)])
def test_tiles_cover_each_axis_with_the_overlap_asked_and_no_more_tiles_than_needed(length, tile, overlap):
    from restoration.engine import _layout

    starts, size = _layout(length, tile, overlap)
    assert (
        starts[0] == 0
        and starts[-1] + size == length
        and size <= max(tile, length if length <= tile else 0) + 1
    )
    assert all(
        size - (b - a) >= overlap for a, b in zip(starts, starts[1:], strict=False)
    )  # neighbours share enough
    fewest = 1 if length <= tile else -(-(length - overlap) // (tile - overlap))
    assert len(starts) == fewest


def test_uint8_tensors_as_the_gpu_decoder_gives_them_restore_like_arrays(photo):
    from restoration.decode import gpu_jpeg_available

    engine = Restorer(model(), EngineConfig(tile=128, overlap=32))
    grey = photo[..., :1].copy()
    for array in (photo, grey):
        from_array = engine.restore([array])[0]
        from_tensor = engine.restore([torch.from_numpy(array)])[0]
        assert from_tensor.image.dtype == np.uint8 and from_tensor.image.shape == array.shape
        assert np.array_equal(from_tensor.image, from_array.image)
    with pytest.raises(TypeError, match="tensors must be uint8"):
        engine.restore([torch.zeros(8, 8, 3)])
    assert not gpu_jpeg_available(torch.device("cpu"))  # CPU workers decode with Pillow


@pytest.mark.skipif(not __import__("shutil").which("cc"), reason="torch.compile on CPU needs a C compiler")
def test_compiled_model_gives_the_eager_result(photo):
    net = model()
    image = photo[:200, :180]
    eager = Restorer(net, EngineConfig(tile=128, overlap=32)).restore([image])[0]
    compiled = Restorer(net, EngineConfig(tile=128, overlap=32, compile=True)).restore([image])[0]
    assert np.abs(eager.image.astype(int) - compiled.image.astype(int)).max() <= 1
    assert np.abs(eager.mask - compiled.mask).max() < 1e-3
