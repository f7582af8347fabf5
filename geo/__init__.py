"""Geometry of ISS photography: orbits, TLEs, visibility, sun and footprints (pure functions).

Nothing here reads settings or touches the database; callers pass plain values (for example
``max_age_days=get_settings().tle_max_age_days``). Lon/lat geometries are shapely objects in
EPSG:4326 ``(lon, lat)`` order, split at the antimeridian; areas are WGS84 km².

- :mod:`geo.tle`: parse and validate TLE files, pick the element set nearest in time;
- :mod:`geo.orbit`: SGP4 sub-satellite point, trusted-or-fallback location, ground tracks;
- :mod:`geo.visibility`: region of the Earth that sees the satellite, and its area;
- :mod:`geo.sun`: Sun elevation at ground points;
- :mod:`geo.footprint`: four-corner photo footprints, their area and IoU;
- :mod:`geo.prior`: the obliquity prior fitted on the real EOL footprints (where photos lie around the nadir);
- :mod:`geo.checks`: metadata checks (capture time, TLE age, nadir vs orbit, footprint vs horizon);
- :mod:`geo.eol`: the EOL catalogue layout (columns, photo id ``MISSION-ROLL-FRAME``, corner order);
- :mod:`geo.lonlat`, :mod:`geo.geojson`: shared lon/lat helpers and GeoJSON;
- :mod:`geo.sky`: offline skyfield data and the timezone rule for times.
"""

from geo.footprint import (
    footprint_area_km2,
    footprint_iou,
    footprint_ious,
    footprint_polygon,
    overlapping_pairs,
)
from geo.geojson import feature_collection, from_geojson, to_feature
from geo.lonlat import geodesic_area_km2
from geo.orbit import (
    DEFAULT_MAX_TLE_AGE_DAYS,
    ISS_ALTITUDE_KM,
    GroundTrack,
    IssFix,
    SubPoint,
    distance_to_track_km,
    ground_track,
    iss_position,
    locate_iss,
)
from geo.sky import parse_time
from geo.sun import sun_elevation
from geo.tle import TLE, ParsedTLEs, TLELineError, as_tles, nearest_tle, parse_tles, tle_from_lines
from geo.visibility import (
    horizon_angle_deg,
    visibility_area_km2,
    visibility_feature,
    visibility_radius_km,
    visibility_region,
)

__all__ = [
    "DEFAULT_MAX_TLE_AGE_DAYS",
    "ISS_ALTITUDE_KM",
    "TLE",
    "GroundTrack",
    "IssFix",
    "ParsedTLEs",
    "SubPoint",
    "TLELineError",
    "as_tles",
    "distance_to_track_km",
    "feature_collection",
    "footprint_area_km2",
    "footprint_iou",
    "footprint_ious",
    "footprint_polygon",
    "from_geojson",
    "geodesic_area_km2",
    "ground_track",
    "horizon_angle_deg",
    "iss_position",
    "locate_iss",
    "nearest_tle",
    "overlapping_pairs",
    "parse_time",
    "parse_tles",
    "sun_elevation",
    "tle_from_lines",
    "to_feature",
    "visibility_area_km2",
    "visibility_feature",
    "visibility_radius_km",
    "visibility_region",
]
