"""Measure EarthMatch refinement method by method, per tilt class and per nuisance (issue 16).

Not a test and not the service's benchmark (that is `astroloc bench localize`): a measurement
script for choosing the matcher's settings. Each photo is matched against its right candidate
(the plain tile of its matching zoom that contains its centre, at the quarter turn nearest to its
orientation) and ``--distractors`` wrong ones (tiles of the same zoom whose neighbourhood does not
touch the footprint), so the acceptance can be fitted on right vs wrong candidates.

    nice -n 10 .venv/bin/python scripts/refine_eval.py render --out var/eval/oblique --photos 60 \
        --tilt 40 70 --focal 20 120 --seed 16
    nice -n 10 .venv/bin/python scripts/refine_eval.py run --world var/world --photos 60 \
        --set query_max_side=320 --out var/eval/runs/base.jsonl
    .venv/bin/python scripts/refine_eval.py report var/eval/runs/base.jsonl

``run`` writes one JSON line per candidate tried; ``report`` prints the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
from pyproj import Geod

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_GEOD = Geod(ellps="WGS84")
TILT_CLASSES = (("near-vertical", 0.0, 20.0), ("low-oblique", 20.0, 55.0), ("high-oblique", 55.0, 90.0))


def tilt_class(tilt_deg: float) -> str:
    """NASA's classes of Earth photos by off-nadir angle (near-vertical, low-, high-oblique > 55 deg)."""
    return next(name for name, low, high in TILT_CLASSES if low <= tilt_deg < high)


def nuisances_of(row: dict) -> list[str]:
    found = []
    if float(row["CLOUD_FRACTION"]) >= 0.25:
        found.append("clouds")
    if float(row["HAZE_OPTICAL_DEPTH"]) >= 0.15:
        found.append("haze")
    if str(row["SHUTTLE_FILM"]) == "1":
        found.append("shuttle-film")
    if row["OCCLUDED_CORNER"]:
        found.append("occluded-corner")
    return found or ["none"]


# --- rendering a hard set ---------------------------------------------------------------------


def render(args: argparse.Namespace) -> None:
    from world.catalogue import WorldPaths, simulated_photo_id, truth_row, write_queries_csv
    from world.sampling import QuerySampling, sample_tles, sample_view
    from world.view import render_view

    paths = WorldPaths(Path(args.out))
    paths.queries.mkdir(parents=True, exist_ok=True)
    sampling = QuerySampling(width=args.width, height=args.height, focal_mm=tuple(args.focal),
                             tilt_deg=tuple(args.tilt), earth_limb_fraction=0.0)
    rng = np.random.default_rng(args.seed)
    tles = sample_tles()
    rows = []
    for frame in range(args.photos):
        view = sample_view(rng, tles, sampling)
        rendered = render_view(view)
        photo_id = simulated_photo_id(frame, roll="H")
        image = paths.queries / f"{photo_id}.jpg"
        image.write_bytes(rendered.jpeg)
        rows.append(truth_row(rendered, photo_id, frame, "test", image.relative_to(paths.root)))
        print(f"{photo_id}: tilt {view.tilt_deg:.0f} deg, {view.focal_mm:.0f} mm", flush=True)
    write_queries_csv(paths.csv, rows)


# --- running a method -------------------------------------------------------------------------


def _refine():  # noqa: ANN202
    """The refinement module measured (REFINE_MODULE, default geo.refine)."""
    import importlib
    import os

    return importlib.import_module(os.environ.get("REFINE_MODULE", "geo.refine"))


def _parse_sets(items: list[str]) -> dict:
    RefineParams = _refine().RefineParams  # noqa: N806

    types = {f.name: f.type for f in fields(RefineParams)}
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in types:
            raise SystemExit(f"unknown RefineParams field {name!r}")
        kind = types[name] if isinstance(types[name], type) else eval(types[name], {"float": float, "int": int, "str": str, "bool": bool})  # noqa: S307
        out[name] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
    return out


def _candidates(photo, rng: np.random.Generator, distractors: int, zoom: int = 0):  # noqa: ANN001
    from index.tiles import Tile, tile_at, tile_xy_to_lonlat
    from shapely.geometry import box

    zoom = zoom or min(6, max(3, photo.matching_zoom))
    centre = photo.truth.centroid
    right = tile_at(centre.x, centre.y, zoom)
    rotation = int(round(((360.0 - photo.orientation_deg) % 360.0) / 90.0)) % 4 * 90
    out = [("right", right, rotation)]
    n = 2**zoom
    while len(out) < distractors + 1:
        x, y = int(rng.integers(n)), int(rng.integers(1, n - 1))
        west, north = tile_xy_to_lonlat(x - 1, y - 1, zoom)
        east, south = tile_xy_to_lonlat(x + 2, y + 2, zoom)
        if box(float(west), float(south), float(east), float(north)).intersects(photo.truth):
            continue
        out.append(("wrong", Tile(zoom, x, y), int(rng.integers(4)) * 90))
    return out


def corner_errors_km(corners_lonlat: np.ndarray, truth_latlon) -> list[float]:  # noqa: ANN001
    """Geodesic error of each corner (TL, TR, BR, BL) against the truth (LL, UL, UR, LR as lat, lon)."""
    ll, ul, ur, lr = truth_latlon
    truth = [ul, ur, lr, ll]
    out = []
    for (lon, lat), (tlat, tlon) in zip(corners_lonlat, truth, strict=True):
        _, _, metres = _GEOD.inv(lon, lat, tlon, tlat)
        out.append(metres / 1000.0)
    return out


def run(args: argparse.Namespace) -> None:
    from geo import footprint_iou
    refine = _refine()
    RefineParams, refine_candidates = refine.RefineParams, refine.refine_candidates  # noqa: N806
    from index.sources import LocalXYZSource
    from index.surroundings import surrounding_image
    from world.catalogue import read_photos

    params = replace(RefineParams(), **_parse_sets(args.set))
    params.min_inliers = 4
    params.stop_at_inliers_factor = float("inf")
    if hasattr(params, "acceptance"):  # accept everything plausible; raw spreads (the fit comes after)
        from geo.acceptance import Acceptance

        params.acceptance = Acceptance(min_probability=0.0, max_corner_shift=float("inf"), uncertainty_scale=1.0,
                                       uncertainty_floor_km=0.0)
    source = LocalXYZSource(Path(args.tiles))
    if args.zoom_in:
        from index.surroundings import zoom_in_surrounding

        def zoom_in(corners_lonlat):  # noqa: ANN001, ANN202
            return zoom_in_surrounding(source, corners_lonlat, max_zoom=args.zoom_in)
    wanted = set(args.only.split(",")) if args.only else None  # e.g. the misses `astroloc bench localize` reports
    photos = read_photos(args.world, split="test", limit=None if wanted else args.photos)
    if wanted:
        photos = [p for p in photos if p.photo_id in wanted]
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    with out.open("w") as handle:
        for photo in photos:
            image = np.asarray(Image.open(photo.image_path).convert("RGB"))
            if args.upscale:
                image = np.asarray(Image.fromarray(image).resize((args.upscale, round(args.upscale * image.shape[0] / image.shape[1])), Image.BICUBIC))
            chosen = _candidates(photo, rng, args.distractors, args.candidate_zoom)
            surroundings = [(surrounding_image(source, tile), rotation) for _, tile, rotation in chosen]
            started, cpu_started = time.perf_counter(), time.process_time()
            result = refine_candidates(image, surroundings, params, **({"zoom_in": zoom_in} if args.zoom_in else {}))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            row = photo.columns
            for (kind, tile, rotation), match, (geo_image, _) in zip(chosen, result.matches, surroundings, strict=False):
                record = {
                    "photo": photo.photo_id, "kind": kind, "tile": str(tile), "rotation": rotation,
                    "tilt_deg": float(row["TILT_DEG"]), "focal_mm": float(row["FOCAL_MM"]),
                    "nuisances": nuisances_of(row), "photo_s": round(elapsed, 3), "photo_cpu_s": round(cpu, 3),
                    "match": _jsonable(match.to_dict()),
                }
                if match.corners_px is not None and match.footprint is not None:
                    seen = getattr(match, "corners_lonlat", None)
                    corners = np.asarray(seen) if seen else geo_image.pixel_to_lonlat(np.asarray(match.corners_px))
                    record["corner_error_km"] = [round(e, 2) for e in corner_errors_km(corners, photo.corners)]
                    record["iou"] = round(footprint_iou(match.footprint, photo.truth), 4)
                handle.write(json.dumps(record) + "\n")
            handle.flush()
            right = result.matches[0]
            print(f"{photo.photo_id} tilt {float(row['TILT_DEG']):4.0f} inliers {right.inliers_per_iteration} "
                  f"{right.reason or ''} {elapsed:.2f}s wall {cpu:.2f}s cpu", flush=True)


def _jsonable(value):  # noqa: ANN001, ANN202
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k != "footprint"}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.floating | np.integer):
        return value.item()
    return value


# --- report -----------------------------------------------------------------------------------


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open() if line.strip()]


def right_ok(record: dict, iou: float = 0.5) -> bool:
    return record.get("iou") is not None and record["iou"] >= iou and record["match"]["reason"] is None


def _scored(record: dict):  # noqa: ANN202
    from geo.acceptance import Scored

    m = record["match"]
    tentative = m.get("tentative") or 0
    return Scored(m["inliers"], m["inliers"] / tentative if tentative else 0.0, m.get("corner_shift"),
                  right_ok(record), tuple(m["corner_uncertainty_km"]) if m.get("corner_uncertainty_km") else None,
                  tuple(record["corner_error_km"]) if record.get("corner_error_km") else None,
                  plausible=m["reason"] is None or m.get("confidence") is not None, camera=m.get("model") == "camera")


def report(args: argparse.Namespace) -> None:
    from geo.acceptance import Acceptance, fit_acceptance, fit_uncertainty_scale

    for path in args.runs:
        records = load(Path(path))
        right = [r for r in records if r["kind"] == "right"]
        wrong = [r for r in records if r["kind"] == "wrong"]
        plausible = [r for r in records if r["match"]["reason"] is None]
        try:
            rule = fit_acceptance([_scored(r) for r in plausible], precision=args.precision)
        except ValueError as exc:  # no wrong candidate with a plausible outline: accept every plausible one
            scored = [_scored(r) for r in plausible if right_ok(r)]
            rule = Acceptance(min_probability=0.0, max_corner_shift=float("inf"),
                              uncertainty_scale=fit_uncertainty_scale(scored, Acceptance().uncertainty_floor_km),
                              fitted_on={"note": str(exc)})
        def accepted(r: dict) -> bool:  # noqa: E306
            s = _scored(r)
            return r["match"]["reason"] is None and rule.refusal(rule.probability_of(s), s.corner_shift) is None
        print(f"## {path}: {len(right)} photos, {len(wrong)} wrong candidates; acceptance fitted for "
              f"{args.precision:.1%} precision: P >= {rule.min_probability:.3f}, corner shift <= {rule.max_corner_shift:.3f}, "
              f"uncertainty scale {rule.uncertainty_scale:.2f} (+{rule.uncertainty_floor_km} km); {rule.fitted_on}")
        groups: dict[str, list[dict]] = {"all": right}
        for name, *_ in TILT_CLASSES:
            groups[name] = [r for r in right if tilt_class(r["tilt_deg"]) == name]
        groups["tilt >= 40"] = [r for r in right if r["tilt_deg"] >= 40]
        for nuisance in ("none", "clouds", "haze", "shuttle-film", "occluded-corner"):
            groups[nuisance] = [r for r in right if nuisance in r["nuisances"]]
        print("| group | photos | right outline (IoU >= 0.5) | right and accepted | median IoU | median corner km | "
              "uncertainty covers 4 corners | CPU s/photo |")
        print("|---|---|---|---|---|---|---|---|")
        for name, group in groups.items():
            if not group:
                continue
            ok = [r for r in group if right_ok(r)]
            taken = [r for r in ok if accepted(r)]
            errors = [statistics.median(r["corner_error_km"]) for r in taken]
            covered = [all(e <= u for e, u in zip(r["corner_error_km"], rule.uncertainty_km(np.array(r["match"]["corner_uncertainty_km"])) or [0.0] * 4, strict=True))
                       for r in taken if r["match"].get("corner_uncertainty_km")]
            print(f"| {name} | {len(group)} | {len(ok) / len(group):.1%} | {len(taken) / len(group):.1%} | "
                  f"{statistics.median(r['iou'] for r in ok) if ok else math.nan:.2f} | "
                  f"{statistics.median(errors) if errors else math.nan:.1f} | "
                  f"{np.mean(covered) if covered else math.nan:.1%} | "
                  f"{statistics.mean(r.get('photo_cpu_s', r['photo_s']) for r in group):.2f} |")
        wrong_taken = [r for r in records if not right_ok(r) and accepted(r)]
        print(f"accepted but wrong: {len(wrong_taken)} (IoU {[r.get('iou') for r in wrong_taken][:8]})\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("render", help="render a set of hard photos (a mini world: queries/ + queries.csv)")
    p.add_argument("--out", required=True)
    p.add_argument("--photos", type=int, default=60)
    p.add_argument("--tilt", type=float, nargs=2, default=(40.0, 70.0))
    p.add_argument("--focal", type=float, nargs=2, default=(20.0, 120.0))
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--seed", type=int, default=16)
    p.set_defaults(func=render)
    p = sub.add_parser("run", help="match each photo against its right candidate and distractors")
    p.add_argument("--world", default="var/world")
    p.add_argument("--tiles", default="var/world/tiles")
    p.add_argument("--photos", type=int, default=60)
    p.add_argument("--distractors", type=int, default=2)
    p.add_argument("--zoom-in", type=int, default=0, help="coarse-to-fine up to this tile zoom (0: off)")
    p.add_argument("--candidate-zoom", type=int, default=0, help="candidates at this zoom, not the matching one")
    p.add_argument("--upscale", type=int, default=0, help="resize photos to this width first (large inputs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default="", help="comma-separated photo ids of the test split (instead of --photos)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a RefineParams field")
    p.add_argument("--out", required=True)
    p.set_defaults(func=run)
    p = sub.add_parser("report", help="tables from run outputs")
    p.add_argument("runs", nargs="+")
    p.add_argument("--precision", type=float, default=0.999)
    p.set_defaults(func=report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
