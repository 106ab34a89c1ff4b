"""Prefect flows, object-store access, image I/O, settings and the ``archive`` CLI."""
