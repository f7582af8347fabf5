"""`astroloc refine QUERY CANDIDATE` (EarthMatch on one image pair) and `astroloc label weak CSV`
(weak-to-full labelling of a catalogue)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from geo.refine import GeoImage, match_rotations
from service.localize.refine import refine_params
from service.cli.common import fail, print_json, read_image
from service.config import get_settings

label_app = typer.Typer(no_args_is_help=True, help="Label catalogue photos (weak point -> full footprint).")


def register(app: typer.Typer) -> None:
    app.command("refine")(refine)
    app.add_typer(label_app, name="label")


def refine(
    query: Path = typer.Argument(..., exists=True, dir_okay=False, help="The astronaut photo."),
    candidate: Path = typer.Argument(..., exists=True, dir_okay=False, help="The candidate (satellite) image."),
    bounds: tuple[float, float, float, float] = typer.Option(
        None, metavar="W S E N", help="The candidate's lon/lat bounds (Web Mercator pixels): adds the footprint."),
    rotation: int = typer.Option(None, help="Match at this rotation only (0, 90, 180, 270; clockwise)."),
    min_inliers: int = typer.Option(None, help="Acceptance threshold (default: the calibrated setting)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """EarthMatch on one pair: is QUERY in CANDIDATE, and where? Tries the 4 rotations unless
    --rotation is given; prints the best match."""
    settings = get_settings()
    if rotation is not None and rotation not in (0, 90, 180, 270):
        fail(f"--rotation must be 0, 90, 180 or 270, got {rotation}")
    if bounds is not None:
        west, south, east, north = bounds
        if not (south < north and west < east and -90 < south and north < 90 and east - west <= 360):
            fail(f"--bounds must be W S E N with W < E, S < N inside the globe, got {bounds}")
    params = refine_params(settings)
    if min_inliers is not None:
        if min_inliers < 4:
            fail("--min-inliers must be at least 4 (a homography needs 4 matches)")
        params = replace(params, min_inliers=min_inliers)
    rotations = (rotation,) if rotation is not None else (0, 90, 180, 270)
    surrounding = GeoImage(read_image(candidate, settings.max_image_pixels), bounds)
    best, tried = match_rotations(read_image(query, settings.max_image_pixels), surrounding, params, rotations)
    answer = best.to_dict() | {
        "min_inliers": params.min_inliers,
        "min_confidence": params.acceptance.min_probability,
        "rotations_tried": [{"rotation_deg": m.rotation, "inliers": m.inliers, "accepted": m.accepted,
                             "reason": m.reason, "inliers_per_iteration": m.inliers_per_iteration,
                             "method": m.method, "model": m.model, "confidence": m.confidence,
                             "runtime_s": round(m.runtime_s, 3)} for m in tried],
    }
    if as_json:
        print_json(answer)
        return
    verdict = "ACCEPTED" if best.accepted else f"rejected ({best.reason})"
    confidence = f"confidence {best.confidence:.3f}, " if best.confidence is not None else ""
    typer.echo(f"{verdict}: {best.inliers} inliers at rotation {best.rotation} deg ({confidence}method "
               f"{best.method}, corners from the {best.model}; {best.runtime_s:.2f} s)")
    for m in tried:
        typer.echo(f"  rotation {m.rotation:3d}: inliers per iteration {m.inliers_per_iteration}, {m.method}, "
                   f"{m.runtime_s:.2f} s: {'accepted' if m.accepted else m.reason}")
    if best.corner_uncertainty_km:
        typer.echo("corner uncertainty (km, TL, TR, BR, BL): " + ", ".join(f"{u:.1f}" for u in best.corner_uncertainty_km))
    if best.corners_px:
        typer.echo("corners in candidate px (TL, TR, BR, BL): "
                   + ", ".join(f"({x:.1f}, {y:.1f})" for x, y in best.corners_px))
    if answer["footprint"]:
        ring = answer["footprint"]["coordinates"][0][:4] if answer["footprint"]["type"] == "Polygon" else []
        typer.echo("footprint (lon, lat): " + ", ".join(f"({x:.4f}, {y:.4f})" for x, y in ring))


@label_app.command("weak")
def weak(
    catalogue: Path = typer.Argument(..., exists=True, dir_okay=False, help="EOL-layout CSV with NADIR_LAT/LON."),
    out: Path = typer.Option(None, help="Output CSV (default: CATALOGUE with .labelled.csv)."),
    images: Path = typer.Option(None, file_okay=False, help="Directory of images named PHOTO_ID.jpg."),
    url_template: str = typer.Option(None, help="Image URL template, e.g. https://host/{mission}/{photo_id}.JPG"),
    steps: int = typer.Option(2, min=1, help="Tiles per tile width of the candidate grid (2: AstroLoc's overlap)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Weak-to-full labelling (AstroLoc 3.1): refine each photo against the tiles containing its
    point at every zoom and 4 rotations; write the best accepted footprint's corners back."""
    from service.ingest import ImageFinder
    from service.weak_labels import label_weak

    settings = get_settings()
    if not settings.resolved_tiles_dir.is_dir():
        fail(f"no tiles at {settings.resolved_tiles_dir}: build the world first (`astroloc world build`)")
    finder = ImageFinder(catalogue, images_dir=images, url_template=url_template)
    out = out or catalogue.with_suffix(".labelled.csv")
    try:
        summary = label_weak(settings, catalogue, out, finder, steps=steps, progress=progress)
    except ValueError as exc:  # a CSV without the needed columns
        fail(str(exc))
    print_json(summary | {"out": str(out)})
