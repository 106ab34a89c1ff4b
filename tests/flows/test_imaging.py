"""Decoding, metadata and thumbnails of single files (no flow, no catalogue)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from flows.imaging.exif import capture_date, read_exif
from flows.imaging.inspect import inspect_image
from tests import samples


def inspect(data: bytes, max_pixels: int = 50_000_000):
    return inspect_image(io.BytesIO(data), len(data), max_pixels, 128)


def thumb(data: bytes) -> Image.Image:
    result = inspect(data)
    assert result.ok, result.reason
    return Image.open(io.BytesIO(result.thumbnail))


def test_pixel_limit_is_checked_before_decoding():
    assert "decompression bomb" in inspect(samples.bomb_png()).reason
    big = samples.jpeg((400, 300))
    assert inspect(big, max_pixels=400 * 300).ok
    assert "over the limit of 119,999" in inspect(big, max_pixels=400 * 300 - 1).reason


def test_cmyk_thumbnail_keeps_its_colours():
    reference = np.asarray(thumb(samples.jpeg()), dtype=float)
    from_cmyk = np.asarray(thumb(samples.cmyk_jpeg()), dtype=float)
    assert np.abs(reference - from_cmyk).mean() < 20  # not inverted, not grey


def test_transparent_palette_png_is_flattened_on_white():
    img = Image.new("P", (32, 32), 0)
    img.putpalette([0, 0, 0] * 256)
    out = io.BytesIO()
    img.save(out, "PNG", transparency=0)
    assert thumb(out.getvalue()).getpixel((5, 5)) >= (250, 250, 250)


def test_sixteen_bit_gray_thumbnail_is_scaled_not_clipped():
    arr = np.asarray(thumb(samples.gray16_tiff()).convert("L"))
    assert arr.min() < 10 and arr.max() > 245 and len(np.unique(arr)) > 100


def test_every_frame_is_decoded():
    frames = samples.multipage_tiff()
    cut = frames[: int(len(frames) * 0.8)]  # the last page's pixels are missing
    result = inspect(cut)
    assert not result.ok and "frame" in result.reason


@pytest.mark.parametrize(
    "tags, expected",
    [
        ({"EXIF DateTimeOriginal": "1931:07:14 09:30:00"}, "1931-07-14T09:30:00"),
        ({"EXIF DateTimeOriginal": "0000:00:00 00:00:00", "Image DateTime": "1950:01:02"}, "1950-01-02"),
        ({"Image DateTime": "1931:13:40 99:00:00"}, None),
        ({"Image DateTime": "    "}, None),
        ({}, None),
    ],
)
def test_capture_date_parsing(tags, expected):
    assert capture_date(tags) == expected


def test_exif_values_are_json_safe_and_bounded():
    import json

    tags, error = read_exif(io.BytesIO(samples.exif_jpeg(description="é" * 5000)))
    assert error is None
    json.dumps(tags)  # must not raise
    assert tags["Image Make"] == "Epson"
    assert len(tags["Image ImageDescription"]) < 1100


def test_one_pixel_limit_from_ingest_to_restoration_and_previews(monkeypatch):
    """A scan over Pillow's default limit (179 MP) but under the catalogue's (what ingest accepts,
    ARCHIVE_INGEST__MAX_PIXELS) is read where restoration, styles and previews read it; one over
    the catalogue's limit is refused with a clear error, before decoding."""
    from flows.imaging.io import read_image

    w, h = 13420, 13340
    pillow_default = 178_956_970
    assert w * h > pillow_default
    buffer = io.BytesIO()
    Image.new("L", (w, h), 200).save(buffer, "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_default)  # as a fresh worker process has it
    loaded = read_image(buffer.getvalue())
    assert loaded.pixels.shape == (h, w) and loaded.pixels[h - 1, w - 1] == 200
    monkeypatch.setenv("ARCHIVE_INGEST__MAX_PIXELS", "100000000")
    with pytest.raises(
        ValueError, match=r"13420x13340 = 179,022,800 pixels is over the limit of 100,000,000"
    ):
        read_image(buffer.getvalue())


@pytest.mark.parametrize(
    "shape, dtype",
    [((90, 120, 3), np.uint8), ((90, 120, 3), np.uint16), ((90, 120, 4), np.uint8), ((90, 120), np.uint8)],
)
def test_the_worker_pool_encodes_a_version_to_the_same_bytes_as_encoding_in_turn(shape, dtype):
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    from flows.derive.worker import worker_cores
    from flows.derive.writer import encode_all
    from flows.imaging.encode import History, access_copy, mask_png, preservation

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=np.int64).astype(dtype)
    mask = (rng.random(shape[:2]) > 0.9).astype(np.uint8) * 255
    history = History(
        "scans/a.tif", "0" * 64, "1" * 64, "photo-archive test", "restore", "2026-01-01T00:00:00Z", 6
    )
    ran_in: list[str] = []

    def job(fn, *args):
        ran_in.append(threading.current_thread().name)
        return fn(*args)

    jobs = [
        partial(job, preservation, pixels, "a", None, (300, 300), history),
        partial(job, access_copy, pixels, None, (300, 300), history, 64),
        partial(job, mask_png, mask),
    ]
    serial = encode_all(jobs)
    with ThreadPoolExecutor(max(worker_cores(), 2), thread_name_prefix="encode") as pool:
        parallel = encode_all(jobs, pool)
    assert (
        [f.name for f in parallel]
        == [f.name for f in serial]
        == [
            "a.tif" if dtype == np.uint16 else "a.png",
            "access.jpg",
            "mask.png",
        ]
    )
    assert [f.data for f in parallel] == [f.data for f in serial]
    assert ran_in[:3] == ["MainThread"] * 3 and all(name.startswith("encode") for name in ran_in[3:])
