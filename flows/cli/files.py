"""`archive restore-files`: image files restored directly, without a catalogue."""

from __future__ import annotations

import click

from flows.cli.console import each_file, err, key_values
from flows.settings import Settings


@click.command("restore-files")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the results."
)
@click.option("--model", "model_ref", default="restore@production", show_default=True)
@click.option("--masks", is_flag=True, help="Also write <name>.mask.png (the damage mask used).")
@click.option(
    "--mask-dir",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Curators' own masks: <name>.mask.png or <name>.png here (white = damaged) is used "
    "instead of the detector's; needs a staged model.",
)
@click.option("--device", default="auto", show_default=True)
@click.option("--tile", type=click.IntRange(64), default=768, show_default=True, help="Largest tile side.")
@click.option(
    "--param",
    "param_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="tone=auto|neutral|off (a model with the tone stage), strength=0..1. Repeatable.",
)
@click.pass_obj
def restore_files(
    settings: Settings,
    inputs: tuple[str, ...],
    out_dir: str,
    model_ref: str,
    masks: bool,
    mask_dir: str | None,
    device: str,
    tile: int,
    param_values: tuple[str, ...],
) -> int:
    """Restore image files directly, without a catalogue; names, sizes, modes and bit depth kept.
    Each result gets <name>.recipe.json: the model, its weights' sha256, the parameters, the tone
    correction fitted to it and the mask supplied, if any."""
    import json
    from pathlib import Path

    from flows.imaging.io import read_image, read_mask, save_mask, write_image
    from flows.model_versions import load, ready
    from restoration.checkpoints import sha256_file
    from restoration.decode import gpu_jpeg_available
    from restoration.engine import EngineConfig, check_device, takes_mask
    from restoration.recipe import restore_params
    from restoration.tone_runner import engine_for

    try:
        dev = check_device(device)
    except ValueError as exc:
        raise click.UsageError(f"--device: {exc}") from None
    gpu = dev if gpu_jpeg_available(dev) else None  # JPEGs decode on the GPU where they can
    ready(settings)
    model, card, row = load(settings, model_ref, device=str(dev))
    if mask_dir and not takes_mask(model):
        raise click.UsageError(
            f"--mask-dir: {row.name}@{row.version} has no inpainting stage to use a supplied mask"
        )
    try:
        params = restore_params(row.architecture, key_values(param_values))
    except ValueError as exc:
        raise click.UsageError(f"--param: {exc}") from None
    engine = engine_for(model, EngineConfig(tile=tile, device=str(dev)), params)
    target = Path(out_dir)
    err.print(
        f"restoring with {row.name}@{row.version} on {dev}" + (" (JPEG decode on the GPU)" if gpu else "")
    )

    def one(path: Path) -> Path:
        supplied = (
            next(
                (
                    c
                    for c in (Path(mask_dir) / f"{path.stem}.mask.png", Path(mask_dir) / f"{path.stem}.png")
                    if c.is_file()
                ),
                None,
            )
            if mask_dir
            else None
        )
        loaded = read_image(path, gpu)
        result = engine.process([loaded.pixels], masks=[read_mask(supplied)] if supplied else None)[0]
        write_image(target / path.name, result.image, loaded)
        if masks and result.mask is not None:  # strength 0 ran no model, so found no damage
            save_mask(target / f"{path.stem}.mask.png", result.mask)
        recipe = {
            "model": f"{row.name}@{row.version}",
            "weights_sha256": row.weights_sha256,
            "params": params,
            "derived": result.derived,
            "input": path.name,
            "supplied_mask": {"file": supplied.name, "sha256": sha256_file(supplied)} if supplied else None,
        }
        (target / f"{path.stem}.recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
        return target / path.name

    return each_file(inputs, "restored", one)


def register(cli: click.Group) -> None:
    for command in (restore_files,):
        cli.add_command(command)
