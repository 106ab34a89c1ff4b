"""Period styles: process emulations (``presets``), the random-feature statistics used to learn
and to measure styles (``features``), the learned multi-style network's training (``training``),
reference-image transfer (``transfer``) and running any of them over scans (``runner``)."""
