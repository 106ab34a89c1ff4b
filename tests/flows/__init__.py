"""Tests of flows/: the flows, stores, imaging, the CLI, and the code's layout rules."""
