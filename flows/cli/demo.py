"""`make demo`: build a demo inbox of aged photographs, ingest and restore it (twice: the second
time does nothing), give a few items two period styles (a preset and a learned one), describe
them from a manifest, show the catalogue and where the versioned outputs are.

The inbox holds bundled clean images (scikit-image, matplotlib) aged synthetically, one
damaged transfer to show quarantine, and the real damaged scans in ../shared/samples if
present. Everything lands in ./demo-archive (SQLite + a local folder, in-process Prefect).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path("demo-archive")
SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples" / "old-photos"
CLEAN = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "clock", "hubble_deep_field")


def production_restorer() -> str:
    """The restorer a fresh install runs as production (``restoration/weights/shipped.json``), as a ref."""
    from flows.model_versions import SHIPPED

    manifest = json.loads((SHIPPED / "shipped.json").read_text())
    ref = next(r for r, s in manifest.items() if r.startswith("restore-") and s == "production")
    return ref.replace("/", "@")


def clean_images() -> dict[str, Image.Image]:
    from matplotlib import cbook
    from skimage import data

    images = {name: Image.fromarray(getattr(data, name)()) for name in CLEAN}
    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        images["grace_hopper"] = Image.open(fh).convert("RGB")
    return images


# Old prints, mostly: toned, faded, grainy, scratched and dusty; some torn or cracked.
DEMO_AGING = {
    "sepia": 0.7,
    "fading": 0.9,
    "yellowing": 0.4,
    "film_grain": 0.8,
    "gaussian_blur": 0.6,
    "vignette": 0.6,
    "scratches": 0.8,
    "dust": 0.8,
    "cracks": 0.3,
    "tears": 0.2,
    "jpeg": 0.3,
}


def age(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Age a clean image with the project's own degradation model (restoration.degrade)."""
    import torch

    from restoration.degrade import DegradationConfig, degrade

    x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    out = degrade(x, rng, DegradationConfig(DEMO_AGING)).degraded[0]
    return Image.fromarray((out.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


def write_if_changed(path: Path, data: bytes) -> None:
    # Rewriting identical bytes would still change the file's ETag (its mtime).
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def build_inbox(inbox: Path) -> int:
    rng = np.random.default_rng(1925)
    count = 0
    for name, img in clean_images().items():
        out = io.BytesIO()
        age(img, rng).save(out, "JPEG", quality=88, dpi=(600, 600))
        write_if_changed(inbox / "aged" / f"{name}.jpg", out.getvalue())
        count += 1
    good = (inbox / "aged" / "coffee.jpg").read_bytes()
    write_if_changed(inbox / "transfers" / "damaged transfer.jpg", good[: len(good) // 3])
    write_if_changed(inbox / "transfers" / "coffee (second copy).jpg", good)
    count += 2
    if SAMPLES.is_dir():
        for src in sorted(SAMPLES.glob("*.png")):
            write_if_changed(inbox / "real-scans" / src.name, src.read_bytes())
            count += 1
    return count


# What the digitisation team's spreadsheet says about the aged prints (the real scans have no
# record: they stay undescribed, as many do in a real backlog).
MANIFEST = """filename,title,date,creator,place,subjects,rights
aged/astronaut.jpg,Portrait of an astronaut with a flag,c. 1984,NASA,Houston,portraits; space flight,Public domain
aged/camera.jpg,Man with a camera on a tripod,1890s,Unknown,Cambridge MA,photographers; cameras,Public domain
aged/coffee.jpg,A cup of coffee on a saucer,1950s,Unknown,,still life; coffee,CC0
aged/chelsea.jpg,The family cat,c. 1925,Unknown,,cats; pets,CC0
aged/rocket.jpg,Rocket on the launch pad,1960s,Unknown,Cape Canaveral,space flight; rockets,Public domain
aged/coins.jpg,Coins from the Greek collection,19th century,Unknown,,coins; numismatics,Public domain
aged/moon.jpg,The surface of the Moon,1969,Unknown,,astronomy; moon,Public domain
aged/clock.jpg,A wall clock,1930s,Unknown,,clocks; interiors,CC0
aged/hubble_deep_field.jpg,Deep field of distant galaxies,1995,Hubble Space Telescope,,astronomy; galaxies,Public domain
aged/grace_hopper.jpg,Rear Admiral Grace Hopper,1984,James S. Davis,Arlington,portraits; computing,Public domain
"""


def main() -> int:
    from flows.cli.main import main as archive

    inbox = ROOT / "inbox"
    print(f"Building the demo inbox in {inbox} ...")
    n = build_inbox(inbox)
    real = "with" if SAMPLES.is_dir() else "without (../shared/samples not found)"
    print(f"{n} files, {real} the real damaged scans.\n")
    base = ["--db", f"sqlite:///{ROOT}/catalogue.db", "--output", str(ROOT / "store")]
    for attempt in ("First run", "Second run (nothing should be ingested twice)"):
        print(f"== {attempt}: archive ingest {inbox} --collection demo")
        code = archive([*base, "ingest", str(inbox), "--collection", "demo"])
        if code:
            return code
        print()
    for attempt in ("Restore", "Restore again (nothing should be restored twice)"):
        print(f"== {attempt}: archive restore --collection demo")
        code = archive([*base, "restore", "--collection", "demo"])
        if code:
            return code
        print()
    # The production restorer's tone stage ran at its default, tone=auto (fading undone, hue kept);
    # neutral also removes casts and greys toned prints: other parameters, other versions, waiting.
    print("== Also remove casts and toning: archive restore --collection demo --param tone=neutral")
    code = archive([*base, "restore", "--collection", "demo", "--param", "tone=neutral"])
    if code:
        return code
    print()
    for style in ("albumen", "learned:period-styles@v4:cyanotype"):
        print(f"== Period style: archive stylize --collection demo --style {style} --limit 4")
        code = archive([*base, "stylize", "--collection", "demo", "--style", style, "--limit", "4"])
        if code:
            return code
        print()
    # The shipped enlarger is a candidate (see its card): named, not the production default.
    print("== Enlarge: archive upscale --collection demo --scale 2 --model enlarge-x2@v3 --limit 3")
    code = archive(
        [*base, "upscale", "--collection", "demo", "--scale", "2", "--model", "enlarge-x2@v3", "--limit", "3"]
    )
    if code:
        return code
    print()
    manifest = ROOT / "manifest.csv"
    write_if_changed(manifest, MANIFEST.encode())
    print(f"== Describe the prints: archive import-metadata {manifest} --collection demo")
    code = archive(
        [*base, "import-metadata", str(manifest), "--collection", "demo", "--user", "demo curator"]
    )
    if code:
        return code
    print()
    archive([*base, "collections"])
    print("\n== Search the catalogue: archive search portrait --date 1980..1989")
    archive([*base, "search", "portrait", "--date", "1980..1989", "--no-facets"])
    derivatives = ROOT / "store" / "derivatives" / "demo"
    print(
        f"\nRestored versions:  {derivatives}/<item>/restored/v1/  (image, access.jpg, mask.png, metadata.json; "
        "tone=auto)"
    )
    print(
        f"Neutral tone:       {derivatives}/<item>/restored/v2/  (metadata.json: derived.tone; "
        f"archive promote --collection demo --model {production_restorer()} makes them current)"
    )
    print(f"Styled versions:    {derivatives}/<item>/style:albumen/v1/, …/style:period-styles.cyanotype/v1/")
    print(f"Enlarged versions:  {derivatives}/<item>/upscaled:x2/v1/  (twice the pixels, twice the DPI)")
    print(f"Look closer:        .venv/bin/archive {' '.join(base)} show demo/real-scans/old_b.png")
    print(f"Audit:              .venv/bin/archive {' '.join(base)} audit --collection demo")
    print(
        f"Serve the catalogue: .venv/bin/archive {' '.join(base)} serve   (then open http://127.0.0.1:8000/;"
        " set ARCHIVE_WEB__TOKEN=… to allow approvals and edits)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
