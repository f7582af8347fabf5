"""The figure of docs/world.md: sample photos of a built world beside their ground-truth tiles."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from shapely.geometry import Polygon

from geo.lonlat import WGS84_GEOD
from index.sources import LocalXYZSource
from index.tiles import Tile, lonlat_to_tile_pixel, tile_at, tiles_covering, wrap_longitudes
from world.catalogue import WorldPaths, WorldPhoto, read_photos

_PANEL_PX = 256
_LABEL_PX = 34


def make_figure(world_dir: Path | str, out_png: Path | str, n_examples: int = 6) -> Path:
    """Draw sample queries of a built world beside their ground-truth tiles, as a PNG.

    Each pair shows a simulated photo and the mosaic of database tiles covering its footprint
    at its matching zoom, with the 4-corner footprint drawn in yellow (a dot at the image's
    upper-left corner gives the orientation). Examples are picked to span the zoom levels.
    """
    paths = WorldPaths(Path(world_dir))
    photos = read_photos(paths.root)  # Earth-only photos of every split
    tiles = LocalXYZSource(paths.tiles)
    zooms = tiles.zooms()
    examples = _pick_examples(photos, zooms, n_examples)
    if not examples:
        raise ValueError(f"no photo of {paths.csv} has its four corners on the Earth")
    pair_width = 2 * _PANEL_PX + 8
    columns = 2
    figure_rows = math.ceil(len(examples) / columns)
    canvas = Image.new("RGB", (columns * pair_width + 16, figure_rows * (_PANEL_PX + _LABEL_PX) + 8), "white")
    draw = ImageDraw.Draw(canvas)
    for position, example in enumerate(examples):
        left = 8 + (position % columns) * pair_width
        top = 4 + (position // columns) * (_PANEL_PX + _LABEL_PX)
        photo = Image.open(example.image_path).convert("RGB").resize((_PANEL_PX, _PANEL_PX))
        zoom = min(max(example.matching_zoom, zooms[0]), zooms[-1])
        canvas.paste(photo, (left, top + _LABEL_PX))
        canvas.paste(_footprint_on_tiles(example, tiles, zoom), (left + _PANEL_PX + 4, top + _LABEL_PX))
        row = example.columns
        label = (
            f"{example.photo_id} ({example.split})  tilt {float(row['TILT_DEG']):.0f} deg, "
            f"{float(row['FOCAL_MM']):.0f} mm\nclouds {float(row['CLOUD_FRACTION']):.0%}"
            f"{', Shuttle film' if row['SHUTTLE_FILM'] == '1' else ''}"
            f"{', window frame' if row['OCCLUDED_CORNER'] else ''}   |   tiles at zoom {zoom}"
        )
        draw.multiline_text((left, top + 2), label, fill="black", spacing=2)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out_png, optimize=True)
    return out_png


def _pick_examples(photos: list[WorldPhoto], zooms: list[int], n_examples: int) -> list[WorldPhoto]:
    """Earth-only photos with some land, spread over the zooms, in FRAME order."""
    usable = [p for p in photos if float(p.columns["LAND_FRACTION"]) >= 0.5]
    by_zoom: dict[int, list[WorldPhoto]] = {}
    for photo in usable:
        zoom = min(max(photo.matching_zoom, zooms[0]), zooms[-1])
        by_zoom.setdefault(zoom, []).append(photo)
    picked: list[WorldPhoto] = []
    while len(picked) < n_examples and any(by_zoom.values()):
        for zoom in sorted(by_zoom):
            if by_zoom[zoom] and len(picked) < n_examples:
                picked.append(by_zoom[zoom].pop(0))
    return picked


def _footprint_on_tiles(photo: WorldPhoto, tiles: LocalXYZSource, zoom: int) -> Image.Image:
    """Database tiles around a footprint, stitched, with the footprint drawn; a square panel."""
    size, n = tiles.tile_size, 2**zoom
    corners = np.array([[lon, lat] for lat, lon in photo.corners])
    centre = tile_at(float(photo.columns["CENTER_LON"]), float(photo.columns["CENTER_LAT"]), zoom)
    covering = tiles_covering(wrap_longitudes(_unwrapped_polygon(corners)), zoom)
    # Tile offsets from the centre tile (columns wrap), plus a ring of context tiles.
    dxs = [((t.x - centre.x + n // 2) % n) - n // 2 for t in covering]
    dys = [t.y - centre.y for t in covering]
    dx_range = range(min(dxs) - 1, max(dxs) + 2)
    dy_range = range(max(min(dys) - 1, -centre.y), min(max(dys) + 1, n - 1 - centre.y) + 1)
    mosaic = Image.new("RGB", (len(dx_range) * size, len(dy_range) * size), "black")
    for i, dx in enumerate(dx_range):
        for j, dy in enumerate(dy_range):
            tile = Tile(zoom, (centre.x + dx) % n, centre.y + dy)
            mosaic.paste(Image.fromarray(tiles.read_tile(tile)), (i * size, j * size))
    # The footprint's edges as geodesics, in mosaic pixels.
    outline = []
    for (lon1, lat1), (lon2, lat2) in zip(corners, np.roll(corners, -1, axis=0)):
        outline += [(lon1, lat1)] + WGS84_GEOD.npts(lon1, lat1, lon2, lat2, 24)
    lon, lat = np.array(outline).T
    u, v = lonlat_to_tile_pixel(centre, lon, lat, size)
    u, v = u - dx_range[0] * size, v - dy_range[0] * size
    # A square crop around the footprint with a margin, inside the mosaic.
    half = 0.6 * max(u.max() - u.min(), v.max() - v.min())
    middle = np.array([(u.max() + u.min()) / 2, (v.max() + v.min()) / 2])
    half = min(half, mosaic.width / 2, mosaic.height / 2)
    left = float(np.clip(middle[0] - half, 0, mosaic.width - 2 * half))
    top = float(np.clip(middle[1] - half, 0, mosaic.height - 2 * half))
    draw = ImageDraw.Draw(mosaic)
    line_width = max(2, round(2 * half / _PANEL_PX * 2))
    draw.line(list(zip(u, v)) + [(u[0], v[0])], fill=(255, 230, 0), width=line_width)
    ul_u, ul_v = lonlat_to_tile_pixel(centre, corners[1, 0], corners[1, 1], size)
    ul = (float(ul_u) - dx_range[0] * size, float(ul_v) - dy_range[0] * size)
    radius = 2.5 * line_width
    draw.ellipse([ul[0] - radius, ul[1] - radius, ul[0] + radius, ul[1] + radius], fill=(255, 230, 0))
    crop = mosaic.crop((round(left), round(top), round(left + 2 * half), round(top + 2 * half)))
    return crop.resize((_PANEL_PX, _PANEL_PX), Image.Resampling.LANCZOS)


def _unwrapped_polygon(corners: np.ndarray) -> Polygon:
    """A lon/lat polygon of corners with longitudes made continuous (may extend beyond +/-180)."""
    lon = corners[:, 0].copy()
    lon = (lon - lon[0] + 180.0) % 360.0 - 180.0 + lon[0]
    return Polygon(np.column_stack([lon, corners[:, 1]]))
