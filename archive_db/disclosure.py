"""What a derivative says about how it was made, for people and for machines: IPTC's Digital Source
Type (the field viewers and regulators read: EU AI Act art. 50, California's AI Transparency Act)
and the label the catalogue shows on derived layers.

A restoration by a trained model is ``algorithmicallyEnhanced`` (the scan, improved by an
algorithm) and labelled AI-restored; a learned style paints a trained network's output over the
photograph, ``compositeWithTrainedAlgorithmicMedia``, labelled AI-styled; a preset style is a
fixed, deterministic recipe of curves and grain: ``algorithmicallyEnhanced`` too, labelled as
algorithmic, not AI. An enlargement by a trained model keeps the scan's content but makes up its
finest detail: ``algorithmicallyEnhanced``, labelled AI-enlarged. https://cv.iptc.org/newscodes/digitalsourcetype/
"""

from __future__ import annotations

from dataclasses import dataclass

VOCABULARY = "http://cv.iptc.org/newscodes/digitalsourcetype/"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"  # XMP namespace of DigitalSourceType


@dataclass(frozen=True)
class Disclosure:
    source_type: str  # a term of IPTC's Digital Source Type vocabulary
    label: str  # what the catalogue shows on the layer
    ai: bool  # made by a trained model

    @property
    def uri(self) -> str:
        return VOCABULARY + self.source_type

    def as_dict(self) -> dict[str, object]:
        return {"digital_source_type": self.uri, "label": self.label, "ai": self.ai}


def disclosure_of(task: str, architecture: str) -> Disclosure:
    """The disclosure of a derivative made by a model version of ``task`` and ``architecture``."""
    if task == "style" and architecture == "preset":
        return Disclosure("algorithmicallyEnhanced", "Algorithmically styled (preset, not AI)", False)
    if task == "style":
        return Disclosure("compositeWithTrainedAlgorithmicMedia", "AI-styled", True)
    if task == "upscale":  # the scan's content, enlarged; the finest detail is the model's guess
        return Disclosure(
            "algorithmicallyEnhanced", "AI-enlarged (fine detail made by a trained model)", True
        )
    return Disclosure("algorithmicallyEnhanced", "AI-restored", True)
