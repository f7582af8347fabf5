"""GeoJSON (RFC 7946) in and out for lon/lat geometries: what the CLI prints and the API returns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from geo.lonlat import WORLD


def to_feature(
    geometry: BaseGeometry, properties: Mapping[str, Any] | None = None, feature_id: str | int | None = None
) -> dict:
    """A GeoJSON Feature of a lon/lat geometry with JSON-ready ``properties``."""
    feature: dict[str, Any] = {
        "type": "Feature",
        "geometry": mapping(geometry),
        "properties": dict(properties or {}),
    }
    if feature_id is not None:
        feature["id"] = feature_id
    return feature


def feature_collection(features: Iterable[dict]) -> dict:
    """A GeoJSON FeatureCollection of Features."""
    return {"type": "FeatureCollection", "features": list(features)}


def from_geojson(obj: Mapping[str, Any]) -> BaseGeometry:
    """The shapely geometry of a GeoJSON geometry or Feature; ValueError when malformed, invalid
    or outside lon [-180, 180], lat [-90, 90]."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"GeoJSON must be an object, got {type(obj).__name__}")
    if obj.get("type") == "Feature":
        obj = obj.get("geometry") or {}
    try:
        geometry = shape(obj)
    except Exception as exc:  # shapely raises several types for malformed input
        raise ValueError(f"not a GeoJSON geometry: {exc}") from None
    if geometry.is_empty:
        raise ValueError("the GeoJSON geometry is empty")
    if not geometry.is_valid:
        raise ValueError("the GeoJSON geometry is invalid (self-intersecting or degenerate)")
    if not WORLD.covers(geometry):
        raise ValueError(
            f"the GeoJSON geometry leaves lon [-180, 180], lat [-90, 90]: bounds {geometry.bounds}"
        )
    return geometry
