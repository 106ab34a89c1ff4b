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
    assert np.abs(a.mask.astype(int) - b.mask.astype(int)).max() <= 1  # uint8 masks, 0..255
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
    assert g.mask.shape == grey.shape and g.mask.dtype == np.uint8 and g.mask.max() > 0


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
    assert np.abs(eager.mask.astype(int) - compiled.mask.astype(int)).max() <= 1


# -- blending on the device, against the numpy blending it replaced --------------------------------


@pytest.mark.parametrize("direct", [True, False], ids=["cpu-direct", "band-only-as-on-cuda"])
@pytest.mark.parametrize("seed", range(6))
def test_device_blending_equals_the_numpy_blending_on_random_tilings(seed, direct):
    from tests.restoration.numpy_engine import numpy_restore

    rng = np.random.default_rng(seed)
    net = model()
    tile = int(rng.choice([48, 64, 96, 128]))
    overlap = int(rng.integers(0, tile // 2))
    config = EngineConfig(tile=tile, overlap=overlap, batch_tiles=int(rng.integers(1, 6)))
    h, w = (int(v) for v in rng.integers(20, 260, size=2))
    channels = [(), (1,), (3,), (4,)][seed % 4]
    for dtype, top, tolerance in ((np.uint8, 255, 1), (np.uint16, 65535, 4)):
        image = rng.integers(0, top + 1, size=(h, w, *channels), dtype=np.int64).astype(dtype)
        image = (image // 64 * 64).astype(dtype) if dtype == np.uint8 else image  # flat areas and edges
        engine = Restorer(net, config)
        engine.direct = direct
        got = engine.restore([image])[0]
        want, want_mask = numpy_restore(net, [image], config)[0]
        assert got.image.dtype == dtype and got.image.shape == image.shape
        assert np.abs(got.image.astype(np.int64) - want.astype(np.int64)).max() <= tolerance, (
            tile,
            overlap,
            h,
            w,
        )
        assert got.mask.dtype == np.uint8 and got.mask.shape == (h, w)
        assert np.abs(got.mask.astype(int) - np.floor(want_mask * 255 + 0.5)).max() <= 1
    assert np.abs(want.astype(np.int64) - image.astype(np.int64)).mean() > 100, (
        "the model must change the image"
    )


def test_float_masks_when_asked_equal_the_numpy_blending(photo):
    from tests.restoration.numpy_engine import numpy_restore

    net, config = model(), EngineConfig(tile=96, overlap=40, batch_tiles=4, mask="float32")
    as_float = photo.astype(np.float32) / 255
    got = Restorer(net, config).restore([as_float])[0]
    want, want_mask = numpy_restore(net, [as_float], config)[0]
    assert got.image.dtype == np.float32 and got.mask.dtype == np.float32
    assert np.abs(got.image - want).max() < 1e-4 and np.abs(got.mask - want_mask).max() < 1e-4
    with pytest.raises(ValueError, match="mask"):
        EngineConfig(mask="float16")


def test_staging_buffers_are_reused_across_batches(photo):
    engine = Restorer(model(identity=True), EngineConfig(tile=64, overlap=16, batch_tiles=2))
    first = engine.restore([photo])[0]
    sets = {k: [s["float"].data_ptr() for s in v] for k, v in engine.staging.sets.items()}
    assert engine.staging.allocations == len(sets) <= 2  # one set per batch shape (a full and a last batch)
    again = engine.restore([photo, photo.copy()])  # dozens of batches more
    assert engine.staging.allocations == len(sets)
    assert {k: [s["float"].data_ptr() for s in v] for k, v in engine.staging.sets.items()} == sets
    assert all(np.array_equal(r.image, first.image) for r in again)
    assert np.array_equal(first.image, photo)  # the identity through reused buffers
    for side in range(40, 64):  # a worker meets scans of every size: what is kept stays bounded
        engine.restore([photo[:side, : side + 7]])
    assert len(engine.staging.sets) <= engine.staging.KEPT
    assert sum(len(v) for v in engine.bands.free.values()) <= engine.bands.KEPT


def test_tiles_per_batch_follow_the_memory_budget():
    from restoration.engine import tiles_for_budget

    gib = 2**30
    assert tiles_for_budget(80 * gib, 2000, 768) == 36  # half of 80 GiB at 2000 bytes a pixel
    assert tiles_for_budget(80 * gib, 500, 768) == 64  # capped
    assert tiles_for_budget(gib // 4, 2000, 768) == 1  # never none
    assert Restorer(model(), EngineConfig()).batch_tiles == 1  # CPU: one tile at a time


class TinyEnlarger(torch.nn.Module):
    """A small ×2 super-resolution model (two 3×3 convolutions, a pixel shuffle, plus the input
    repeated): enough to make tiling errors visible; its receptive field is well inside the overlap."""

    scale = 2

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 12, 3, padding=1),
            torch.nn.PixelShuffle(2),
        )

    def forward(self, x):
        up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest") + self.body(x)
        return up, torch.full((x.shape[0], 1, *up.shape[2:]), -30.0, device=x.device)


@pytest.mark.parametrize("direct", [True, False])
def test_an_enlarging_model_gets_scaled_outputs_equal_to_the_whole_image(photo, direct):
    """Tiles of a ×2 model blended on a canvas twice the size, a band at a time, agree with one
    forward pass over the whole image (to 1/255), for every mode and bit depth; alpha is enlarged."""
    net = TinyEnlarger()
    whole = Restorer(net, EngineConfig(tile=1024, overlap=0))
    tiled = Restorer(net, EngineConfig(tile=80, overlap=24, batch_tiles=3))
    tiled.direct = direct  # on a CPU: the part only one tile covers written at once, or all in the band
    h, w = photo.shape[:2]
    grey = photo.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([photo, np.linspace(0, 255, w, dtype=np.uint8)[None].repeat(h, 0)])
    deep = photo.astype(np.uint16) * 257
    for image in (photo, grey, rgba, deep, photo.astype(np.float32) / 255):
        a, b = whole.restore([image])[0], tiled.restore([image])[0]
        assert b.image.shape == (2 * h, 2 * w, *image.shape[2:]) and b.image.dtype == image.dtype
        top = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}.get(image.dtype, 1.0)
        diff = np.abs(a.image.astype(np.float64) - b.image.astype(np.float64)) / top
        assert diff.max() <= 1 / 255 + 1e-6, image.dtype
        naive = np.repeat(np.repeat(image.astype(np.float64), 2, 0), 2, 1) / top
        assert np.abs(naive - b.image / top).mean() > 0.01  # the model did something
        assert b.mask.shape == (2 * h, 2 * w) and b.mask.max() == 0
    out = tiled.restore([rgba])[0].image
    assert np.array_equal(out[..., 3], np.repeat(np.repeat(rgba[..., 3], 2, 0), 2, 1))
