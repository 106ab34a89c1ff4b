"""Seeded, batched old-photo degradation: effects as ``sample_x(rng, h, w)`` / ``apply_x(img, params)``
pairs, and :func:`degrade`, which returns the degraded image, the clean target, the damage mask
and the sampled parameters (they are provenance)."""

from restoration.degrade.pipeline import DegradationConfig, Degraded, degrade

__all__ = ["DegradationConfig", "Degraded", "degrade"]
