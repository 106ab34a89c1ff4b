"""The classical baseline the model must beat: detect specks and scratches as outliers from a
median filter, inpaint them (biharmonic), then denoise with non-local means (scikit-image)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter


def detect_damage(img: np.ndarray, threshold: float = 0.12, size: int = 5) -> np.ndarray:
    """Pixels whose luminance departs from their neighbourhood's median by more than ``threshold``."""
    lum = img.mean(axis=2)
    return np.abs(lum - median_filter(lum, size=size)) > threshold


def classical_restore(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``img`` float [H, W, 3] in [0, 1] -> (restored, damage mask)."""
    from skimage.restoration import denoise_nl_means, inpaint_biharmonic

    mask = detect_damage(img)
    filled = inpaint_biharmonic(img, mask, channel_axis=-1) if mask.any() else img
    sigma = noise_sigma(filled)
    out = denoise_nl_means(
        filled, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, channel_axis=-1, fast_mode=True
    )
    return np.clip(out, 0, 1).astype(np.float32), mask


def noise_sigma(img: np.ndarray) -> float:
    """Robust noise estimate: median absolute neighbour difference of luminance (no wavelets)."""
    lum = img.mean(axis=2)
    diff = (lum[:, 1:] - lum[:, :-1]) / np.sqrt(2)
    return float(max(1.4826 * np.median(np.abs(diff)), 1e-3))


def tophat_restore(
    img: np.ndarray, size: int = 9, threshold: float = 28 / 255
) -> tuple[np.ndarray, np.ndarray]:
    """The short script a user could write for cracks: a white top-hat on luminance (a ``size`` px
    ellipse) finds thin bright lines and specks (the paper showing through); OpenCV's Telea
    inpaints them, a pixel wider. ``img`` float [H, W, 3] in [0, 1] -> (restored, damage mask)."""
    import cv2

    u8 = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    lum = cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    lines = cv2.morphologyEx(lum, cv2.MORPH_TOPHAT, kernel)
    mask = cv2.dilate((lines > threshold * 255).astype(np.uint8), np.ones((3, 3), np.uint8))
    out = cv2.inpaint(u8, mask, 3, cv2.INPAINT_TELEA)
    return out.astype(np.float32) / 255, mask.astype(bool)
