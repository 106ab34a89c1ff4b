"""Restoration and period-style models: architectures, degradations, training, inference.

This package imports neither Prefect nor the catalogue (see ARCHITECTURE.md).
"""
