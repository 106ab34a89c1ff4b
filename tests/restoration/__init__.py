"""Tests of restoration/: architectures, degradations, the engine, training."""
