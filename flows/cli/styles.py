"""Style commands: ``styles``, ``stylize``, ``style-files``, ``style-transfer`` and ``train style``."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from flows.cli.console import RichReporter, each_file, err, key_values, out, print_outcome, table
from flows.errors import ConfigError
from flows.settings import Settings

TRAIN_MAX_SIDE = 768


def from_option(verb: str):
    """``--from restored|master``: what a derivative is made from (styles, enlargements)."""
    return click.option(
        "--from",
        "source",
        type=click.Choice(["restored", "master"]),
        default="restored",
        show_default=True,
        help=f"{verb} the current restored version, or the master.",
    )  # exemplars and content images are scaled down to this for training


@click.command()
def styles() -> None:
    """The process emulations, with their era, version and parameters."""
    from restoration.styles.presets import PRESETS

    rows = [
        [p.name, p.version, p.era, p.note, ", ".join(f"{k}={v}" for k, v in p.defaults.items())]
        for p in PRESETS.values()
    ]
    out.print(
        table(
            "styles (presets; learned styles: archive models list, task style)",
            ["name", "version", "era", "process", "parameters"],
            rows,
        )
    )


@click.command()
@click.option("--collection", "-c", required=True)
@click.option(
    "--style", required=True, help="A preset (see `archive styles`) or learned:NAME@VERSION[:STYLE]."
)
@click.option("--strength", type=click.FloatRange(0, 1), default=1.0, show_default=True)
@from_option("Style")
@click.option(
    "--param",
    "param_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="A preset parameter, or a learned style's tone=0..1 (repeatable).",
)
@click.option("--limit", type=click.IntRange(1), help="At most this many items (in catalogue order).")
@click.option(
    "--pool", help="Send batches to the restore-batch deployment on this work pool (default: in-process)."
)
@click.pass_obj
def stylize(
    settings: Settings,
    collection: str,
    style: str,
    strength: float,
    source: str,
    param_values: tuple[str, ...],
    limit: int | None,
    pool: str | None,
) -> int:
    """Apply a period style to a collection, as new versions of kind style:<name>."""
    from flows.progress import reporting
    from flows.restore import preflight
    from flows.stylize import prepare, stylize_collection

    params = key_values(param_values)
    try:
        prepare(settings, collection, style, strength, source, params)  # bad names: one line, before Prefect
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    preflight(settings, in_process=pool is None)
    with RichReporter() as bar, reporting(bar):
        summary = stylize_collection(
            collection, style, strength, source, params, limit, pool, settings=settings
        )
    hint = f"have no current {source} version to style (restore them first, or use --from master)"
    return print_outcome(f"stylize: {collection}", summary, hint)


def _stylist_for_files(
    settings: Settings, style: str, strength: float, params: dict[str, str], device: str, tile: int
):
    from flows.stylize import learned_style, parse_style
    from restoration.engine import EngineConfig
    from restoration.styles.presets import get_preset
    from restoration.styles.runner import LearnedStylist, PresetStylist

    ref = parse_style(style)
    if ref.preset:
        try:
            return PresetStylist(get_preset(ref.preset), strength, params, device=device), ref.preset
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    from flows.model_versions import load, ready
    from restoration.styles.runner import learned_params

    ready(settings)
    net, card, row = load(settings, ref.model, device="cpu" if device == "auto" else device)
    if card.get("task") != "style":
        raise ConfigError(f"{row.name}@{row.version} is a {card.get('task')} model, not a style")
    label = learned_style(ref, card)
    try:
        tone = learned_params(net, params).get("tone", 0.0)
    except ValueError as exc:
        raise ConfigError(f"{row.name}@{row.version}: {exc}") from None
    config = EngineConfig(tile=tile, device=device)
    described = f"{row.name}@{row.version}:{label}" + (f" (tone {tone})" if tone else "")
    return LearnedStylist(net, card["styles"], label, strength, config, tone=tone), described


@click.command("style-files")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--style", required=True, help="A preset (see `archive styles`) or learned:NAME@VERSION[:STYLE]."
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the results."
)
@click.option("--strength", type=click.FloatRange(0, 1), default=1.0, show_default=True)
@click.option(
    "--param",
    "param_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="A preset parameter, or a learned style's tone=0..1 (repeatable).",
)
@click.option("--device", default="auto", show_default=True)
@click.option(
    "--tile", type=click.IntRange(64), default=768, show_default=True, help="Largest tile side (learned)."
)
@click.pass_obj
def style_files(
    settings: Settings,
    inputs: tuple[str, ...],
    style: str,
    out_dir: str,
    strength: float,
    param_values: tuple[str, ...],
    device: str,
    tile: int,
) -> int:
    """Style image files directly, without a catalogue: names, sizes and bit depth kept (grey
    inputs come out in colour)."""
    from flows.imaging.io import read_image, write_image

    stylist, label = _stylist_for_files(settings, style, strength, key_values(param_values), device, tile)
    target = Path(out_dir)
    err.print(f"styling with {label} at strength {strength}")

    def one(path: Path) -> Path:
        loaded = read_image(path)
        write_image(target / path.name, stylist.process([loaded.pixels])[0].image, loaded)
        return target / path.name

    return each_file(inputs, "styled", one)


def _as_float(pixels: np.ndarray):
    import torch

    px = np.asarray(pixels)
    px = px[..., None] if px.ndim == 2 else px
    scale = 65535.0 if px.dtype == np.uint16 else 255.0
    x = torch.from_numpy(np.ascontiguousarray(px[..., :3], dtype=np.float32) / scale).permute(2, 0, 1)[None]
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@click.command("style-transfer")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--reference",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The image whose style to take.",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The result (PNG, or TIFF for 16-bit).",
)
@click.option(
    "--steps", type=click.IntRange(1, 5000), default=200, show_default=True, help="Optimisation steps."
)
@click.option(
    "--size",
    type=click.IntRange(64, 2048),
    default=384,
    show_default=True,
    help="Long side the optimisation runs at.",
)
@click.option("--style-weight", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option("--content-weight", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option(
    "--vgg-weights",
    type=click.Path(exists=True, dir_okay=False),
    help="A VGG-19 state dict (torchvision layout) instead of random features.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random-feature network.")
def style_transfer(
    image: str,
    reference: str,
    out_path: str,
    steps: int,
    size: int,
    style_weight: float,
    content_weight: float,
    vgg_weights: str | None,
    seed: int,
) -> None:
    """One-off style transfer from a reference image (Gatys et al.), by optimisation."""
    from rich.progress import Progress

    from flows.imaging.io import Loaded, read_image, write_image
    from restoration.styles.features import make_extractor
    from restoration.styles.transfer import transfer

    content, ref = read_image(Path(image)), read_image(Path(reference))
    spec = {"kind": "vgg19", "weights": vgg_weights} if vgg_weights else {"kind": "random", "seed": seed}
    try:
        extractor = make_extractor(spec)
    except (ValueError, OSError, RuntimeError) as exc:
        raise ConfigError(f"--vgg-weights: {exc}") from None
    with Progress(console=err, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("style transfer", total=steps)
        result = transfer(
            _as_float(content.pixels),
            _as_float(ref.pixels),
            extractor,
            steps,
            size,
            style_weight,
            content_weight=content_weight,
            progress=lambda s, loss: bar.update(task, completed=s),
        )
    sixteen = np.asarray(content.pixels).dtype == np.uint16
    scale = 65535.0 if sixteen else 255.0
    pixels = (result[0].permute(1, 2, 0).numpy() * scale + 0.5).astype(np.uint16 if sixteen else np.uint8)
    target = Path(out_path)
    fmt = "TIFF" if sixteen or target.suffix.lower() in (".tif", ".tiff") else "PNG"
    write_image(
        target, pixels, Loaded(None, fmt, "RGB;16" if sixteen else "RGB", {"dpi": content.info.get("dpi")})
    )
    out.print(
        f"wrote {target} ({steps} steps at {size} px, features: {spec['kind']})",
        markup=False,
        highlight=False,
    )


# -- training --------------------------------------------------------------------------------------


def _fit(arr: np.ndarray, max_side: int = TRAIN_MAX_SIDE) -> np.ndarray:
    """uint8 RGB, at most ``max_side`` on the long side."""
    from PIL import Image

    px = np.asarray(arr)
    if px.dtype == np.uint16:
        px = (px >> 8).astype(np.uint8)
    img = Image.fromarray(px).convert("RGB")
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(img)


def _folder_images(folder: Path) -> list[np.ndarray]:
    from flows.imaging.io import read_image

    if not folder.is_dir():
        raise ConfigError(f"exemplar folder {folder} does not exist")
    images = []
    for path in sorted(
        p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff")
    ):
        try:
            images.append(_fit(read_image(path).pixels))
        except Exception as exc:
            err.print(f"skipped exemplar {path}: {type(exc).__name__}: {exc}", markup=False)
    return images


def _catalogue_images(settings: Settings, terms: dict[str, str]) -> list[np.ndarray]:
    """The masters a catalogue query selects (``collection=``, ``year=A..B``, ``text=``)."""
    from archive_db import queries
    from archive_db.dates import parse_year_range
    from archive_db.search import SearchQuery, search
    from flows.db import ensure_schema, sessions_for
    from flows.imaging.io import read_image
    from flows.storage.store import cached_store, read_all

    years = parse_year_range(terms["year"]) if terms.get("year") else (None, None)
    query = SearchQuery(
        text=terms.get("text"),
        collection=terms.get("collection"),
        year_from=years[0],
        year_to=years[1],
        status="ingested",
        limit=500,
    )
    ensure_schema(settings.db.url, create=False)
    with sessions_for(settings.db.url)() as session:
        ids = [h.id for h in search(session, query, with_facets=False).hits]
        where = [(i.source_uri, i.source_key) for i in queries.items_by_id(session, ids)]
    return [
        _fit(read_image(read_all(cached_store(uri, settings.store, 2), key)).pixels) for uri, key in where
    ]


def exemplar_set(
    settings: Settings, spec: str, photos: dict[str, np.ndarray]
) -> tuple[str, list[np.ndarray], dict]:
    """One ``--exemplars`` value -> (style name, images, what it was). Forms: a folder path;
    ``folder=PATH``; ``collection=C year=1920..1929 [text=…]`` (the catalogue's masters);
    ``preset=NAME`` (the bundled photographs rendered by a process emulation). ``name=`` names
    the style (default: the preset, folder or collection)."""
    from restoration.styles.training import preset_exemplars

    terms: dict[str, str] = {}
    for token in shlex.split(spec):
        key, eq, value = token.partition("=")
        terms.update({key: value} if eq else {"folder": token})
    unknown = set(terms) - {"name", "folder", "collection", "year", "text", "preset"}
    if unknown:
        raise ConfigError(f"--exemplars {spec!r}: unknown term(s) {sorted(unknown)}")
    sources = [k for k in ("folder", "collection", "preset") if k in terms]
    if len(sources) != 1:
        raise ConfigError(f"--exemplars {spec!r}: give one of a folder, collection=… or preset=…")
    source = sources[0]
    if source == "preset":
        images = preset_exemplars(terms["preset"], list(photos.values()))
    elif source == "folder":
        images = _folder_images(Path(terms["folder"]))
    else:
        images = _catalogue_images(settings, terms)
    if not images:
        raise ConfigError(f"--exemplars {spec!r} selects no images")
    name = terms.get("name") or terms.get(source, "").rstrip("/").rsplit("/", 1)[-1]
    described = {k: v for k, v in terms.items() if k != "name"} | {"images": len(images)}
    if source == "preset":
        described["photos"] = sorted(photos)
    return name, images, described


EXEMPLAR_PHOTOS = ("astronaut", "camera", "chelsea", "coins", "clock", "moon", "hubble_deep_field")
# Style training's content: the photographs among the bundled training images, not the restorer's
# textures, documents and colour wheel. A style's statistics are those of photographs; measured on
# v2, even set statistics preferred its dimmed rendering to the process's own while pages of text
# and gravel were among the content crops, and the process's once they were not.
CONTENT_PHOTOS = EXEMPLAR_PHOTOS


@click.command("style")
@click.option("--name", required=True, help="The network's model name.")
@click.option("--version", "version", default="v1", show_default=True)
@click.option(
    "--exemplars",
    "exemplar_specs",
    multiple=True,
    required=True,
    metavar="SPEC",
    help="One style's exemplars (repeat for several styles): FOLDER, 'collection=C year=1920..1929', "
    "or 'preset=albumen'; add name=STYLE to name it.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Where model.safetensors and card.json go.",
)
@click.option("--steps", type=click.IntRange(1), default=2000, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=4, show_default=True)
@click.option("--crop", type=click.IntRange(32), default=128, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-3, show_default=True)
@click.option("--style-weight", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option("--content-weight", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option("--adv-weight", type=click.FloatRange(0), default=0.02, show_default=True)
@click.option(
    "--augment/--no-augment",
    default=True,
    show_default=True,
    help="Zoom out and shuffle colour channels of the content crops (every hue, from few photographs).",
)
@click.option(
    "--tint-weight",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Weight of the tint loss: chroma the exemplars do not show at a pixel's tone (0: off).",
)
@click.option(
    "--set-statistics/--per-crop-statistics",
    default=True,
    show_default=True,
    help="Compare each batch's style statistics as a set (one style per batch) or crop by crop, as v1 and v2 did.",
)
@click.option(
    "--vgg-weights",
    type=click.Path(exists=True, dir_okay=False),
    help="A VGG-19 state dict for the style loss instead of random features.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--fresh", is_flag=True, help="Ignore a saved training state and start over.")
@click.pass_obj
def train_style(
    settings: Settings,
    name: str,
    version: str,
    exemplar_specs: tuple[str, ...],
    out_dir: str,
    steps: int,
    batch: int,
    crop: int,
    lr: float,
    style_weight: float,
    content_weight: float,
    adv_weight: float,
    augment: bool,
    tint_weight: float,
    set_statistics: bool,
    vgg_weights: str | None,
    seed: int,
    device: str,
    fresh: bool,
) -> None:
    """Train one network for several styles, each learnt from a set of exemplars."""
    import torch

    from flows.versions import code_version, software_versions
    from restoration.checkpoints import sha256_file
    from restoration.data import VALIDATION_IMAGES, bundled_images, digest
    from restoration.engine import resolve_device
    from restoration.styles.training import StyleTrainConfig, StyleTrainer, export

    started = time.monotonic()
    photos = bundled_images(EXEMPLAR_PHOTOS)
    sets, described = {}, {}
    for spec in exemplar_specs:
        label, images, what = exemplar_set(settings, spec, photos)
        if label in sets:
            raise ConfigError(f"two exemplar sets are named {label!r}: give each a name=")
        sets[label], described[label] = (
            images,
            what | {"digest": digest({f"{i:05d}": a for i, a in enumerate(images)})},
        )
    features = {"kind": "random", "seed": 0}
    if vgg_weights:
        features = {"kind": "vgg19", "weights": vgg_weights, "sha256": sha256_file(Path(vgg_weights))}
    config = StyleTrainConfig(
        steps=steps,
        batch=batch,
        crop=crop,
        lr=lr,
        style_weight=style_weight,
        content_weight=content_weight,
        adv_weight=adv_weight,
        augment=augment,
        tint_weight=tint_weight,
        set_statistics=set_statistics,
        seed=seed,
        features=features,
    )
    content, val = bundled_images(CONTENT_PHOTOS), bundled_images(VALIDATION_IMAGES)
    dev = resolve_device(device)
    trainer = StyleTrainer(config, sets, list(content.values()), device=str(dev), log=err.print)
    target = Path(out_dir)
    how = {
        "command": "archive " + " ".join(sys.argv[1:]),
        "threads": torch.get_num_threads(),
        "device": str(dev),
    }
    trainer.run(target.with_name(target.name + ".training"), resume=not fresh, session=how)
    metrics = trainer.validate(list(val.values()))
    card = export(
        trainer,
        target,
        {
            "name": name,
            "version": version,
            "metrics": _flat(metrics),
            "per_style": metrics,
            "code_version": code_version(),
            "software": software_versions() | {"torch": torch.__version__},
            "how": how | {"wall_seconds_this_session": round(time.monotonic() - started)},
            "data": {
                "exemplars": described,
                "content": sorted(content),
                "content_digest": digest(content),
                "validation": sorted(val),
                "validation_digest": digest(val),
            },
        },
    )
    rows = [
        [
            s,
            f"{m['gram_ratio']:.3f}",
            f"{m['hist_ratio']:.3f}",
            f"{100 * m['off_palette_after']:.1f}%",
            f"{m['luma_ssim']:.3f}",
        ]
        for s, m in metrics.items()
    ]
    out.print(
        table(
            f"{name} {version}: held-out validation",
            [
                "style",
                "Gram distance after/before",
                "colour distance after/before",
                "off the palette",
                "luminance SSIM",
            ],
            rows,
        )
    )
    out.print(f"wrote {target / card['weights']} (sha256 {card['weights_sha256'][:16]}…) and card.json")


def _flat(metrics: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Means over the styles (the registry's metrics column), per-style figures beside them."""
    keys = next(iter(metrics.values())).keys()
    return {f"mean_{k}": float(np.mean([m[k] for m in metrics.values()])) for k in keys}


def register(cli: click.Group) -> None:
    for command in (styles, stylize, style_files, style_transfer):
        cli.add_command(command)
    cli.commands["train"].add_command(train_style)
