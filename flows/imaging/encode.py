"""Encoding a derivative version: the preservation image, an access copy, the damage mask and the
``metadata.json`` sidecar, each carrying its history.

Preservation images are lossless: 16-bit TIFF (zlib) for 16-bit masters, PNG otherwise. They keep
the master's ICC profile and DPI, and say where they come from inside the file: XMP
``xmpMM:DerivedFrom`` (the master's sha256) and ``xmpMM:History`` (one ``derived`` event with the
software and the recipe), IPTC ``Iptc4xmpExt:DigitalSourceType`` (how it was made: see
``archive_db.disclosure``), EXIF ``Software`` and ``ImageDescription``. The access copy is a JPEG
of at most ``access_px`` on its long side with the same embedded history.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image, PngImagePlugin

from flows.imaging.io import mask_levels

XMP_TEMPLATE = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:stRef="http://ns.adobe.com/xap/1.0/sType/ResourceRef#"
    xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"{source_type}
    xmp:CreatorTool={tool}
    xmp:CreateDate={when}
    xmpMM:DocumentID={document}
    xmpMM:InstanceID={instance}>
   <xmpMM:DerivedFrom rdf:parseType="Resource">
    <stRef:documentID>{master_id}</stRef:documentID>
    <stRef:filePath>{master_key}</stRef:filePath>
   </xmpMM:DerivedFrom>
   <xmpMM:History>
    <rdf:Seq>
     <rdf:li rdf:parseType="Resource">
      <stEvt:action>derived</stEvt:action>
      <stEvt:when>{when_text}</stEvt:when>
      <stEvt:softwareAgent>{tool_text}</stEvt:softwareAgent>
      <stEvt:parameters>{parameters}</stEvt:parameters>
      <stEvt:instanceID>{instance_text}</stEvt:instanceID>
     </rdf:li>
    </rdf:Seq>
   </xmpMM:History>
   <dc:description>
    <rdf:Alt><rdf:li xml:lang="x-default">{description}</rdf:li></rdf:Alt>
   </dc:description>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""

EXIF_SOFTWARE, EXIF_DESCRIPTION, EXIF_ORIENTATION = 0x0131, 0x010E, 0x0112


@dataclass(frozen=True)
class History:
    """What the embedded metadata says about how a derivative was made."""

    master_key: str
    master_sha256: str
    recipe_hash: str
    software: str  # "photo-archive 0.1.0+g…"
    summary: str  # "restored with restore-unet@v1 (weights sha256 …)"
    when: str  # ISO 8601 UTC
    orientation: int | None = None  # the master's EXIF orientation: pixels are kept as stored
    source_type: str | None = None  # IPTC Digital Source Type URI (archive_db.disclosure)

    def xmp(self) -> bytes:
        def text(value: str) -> str:
            return quoteattr(value)[1:-1]

        source_type = (
            f"\n    Iptc4xmpExt:DigitalSourceType={quoteattr(self.source_type)}" if self.source_type else ""
        )
        packet = XMP_TEMPLATE.format(
            source_type=source_type,
            tool=quoteattr(self.software),
            when=quoteattr(self.when),
            document=quoteattr(f"recipe:{self.recipe_hash}:sha256:{self.master_sha256}"),
            instance=quoteattr(f"recipe:{self.recipe_hash}"),
            master_id=text(f"sha256:{self.master_sha256}"),
            master_key=text(self.master_key),
            when_text=text(self.when),
            tool_text=text(self.software),
            parameters=text(self.summary),
            instance_text=text(f"recipe:{self.recipe_hash}"),
            description=text(self.description()),
        )
        return packet.encode("utf-8")

    def description(self) -> str:
        return f"{self.summary}; from master {self.master_key} (sha256 {self.master_sha256})"

    def exif(self) -> Image.Exif:
        exif = Image.Exif()
        exif[EXIF_SOFTWARE] = self.software
        exif[EXIF_DESCRIPTION] = self.description()
        if self.orientation and self.orientation != 1:
            exif[EXIF_ORIENTATION] = self.orientation
        return exif


@dataclass(frozen=True)
class Encoded:
    name: str
    data: bytes
    content_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def preservation(
    pixels: np.ndarray, stem: str, icc: bytes | None, dpi: tuple | None, history: History
) -> Encoded:
    """The lossless image: 16-bit TIFF for uint16 pixels, PNG for 8-bit (grey, RGB, RGBA)."""
    if pixels.dtype == np.uint16:
        return Encoded(f"{stem}.tif", _tiff16(pixels, icc, dpi, history), "image/tiff")
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", history.xmp().decode("utf-8"))
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"pnginfo": info, "exif": history.exif(), "compress_level": 3}
    if icc:
        kwargs["icc_profile"] = icc
    if dpi:
        kwargs["dpi"] = tuple(float(d) for d in dpi)
    Image.fromarray(pixels).save(buf, "PNG", **kwargs)
    return Encoded(f"{stem}.png", buf.getvalue(), "image/png")


def _tiff16(pixels: np.ndarray, icc: bytes | None, dpi: tuple | None, history: History) -> bytes:
    import tifffile

    extratags = [(700, 1, None, history.xmp(), True)]  # XMP, as BYTE
    if icc:
        extratags.append((34675, 7, None, icc, True))  # ICC profile, as UNDEFINED
    buf = io.BytesIO()
    tifffile.imwrite(
        buf,
        pixels,
        photometric="rgb" if pixels.ndim == 3 and pixels.shape[2] in (3, 4) else "minisblack",
        extrasamples=("unassalpha",) if pixels.ndim == 3 and pixels.shape[2] == 4 else None,
        compression="zlib",
        software=history.software,
        description=history.description(),
        resolution=tuple(float(d) for d in dpi) if dpi else None,
        resolutionunit="INCH" if dpi else None,
        extratags=extratags,
        metadata=None,
    )
    return buf.getvalue()


def access_copy(
    pixels: np.ndarray, icc: bytes | None, dpi: tuple | None, history: History, max_px: int, quality: int = 90
) -> Encoded:
    """A JPEG for viewing: 8-bit, at most ``max_px`` on the long side, alpha flattened on white."""
    img = Image.fromarray(pixels if pixels.dtype == np.uint8 else (pixels >> 8).astype(np.uint8))
    if img.mode == "RGBA":
        flat = Image.new("RGB", img.size, (255, 255, 255))
        flat.paste(img, mask=img.getchannel("A"))
        img = flat
    if max(img.size) > max_px:
        img.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": quality, "exif": history.exif(), "xmp": history.xmp()}
    if icc:
        kwargs["icc_profile"] = icc
    if dpi:
        kwargs["dpi"] = tuple(round(float(d)) for d in dpi)
    img.save(buf, "JPEG", **kwargs)
    return Encoded("access.jpg", buf.getvalue(), "image/jpeg")


def pyramid(pixels: np.ndarray, orientation: int | None, history: History | None = None) -> Encoded | None:
    """The version as a tiled pyramid for the IIIF Image API (``imaging.pyramid``), an access
    derivative written and recorded with it; None where libvips cannot be loaded (the web
    catalogue then makes one when the version is first viewed)."""
    try:
        from flows.imaging.pyramid import from_pixels

        xmp = history.xmp() if history else None
        return Encoded("pyramid.tif", from_pixels(pixels, orientation, xmp), "image/tiff")
    except (ImportError, OSError):
        return None


def mask_png(mask: np.ndarray, history: History | None = None) -> Encoded:
    """The damage mask the model found (or the curator's it used), with the version's XMP."""
    buf = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    if history:
        info.add_itxt("XML:com.adobe.xmp", history.xmp().decode("utf-8"))
    Image.fromarray(mask_levels(mask), "L").save(buf, "PNG", compress_level=1, pnginfo=info)
    return Encoded("mask.png", buf.getvalue(), "image/png")


def sidecar(metadata: dict[str, Any]) -> Encoded:
    return Encoded(
        "metadata.json", (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode(), "application/json"
    )
