"""Is a refined candidate right, and how far off may its corners be?

EarthMatch (Berton et al., CVPRW 2024, Sec. 4) accepts a match when its inlier count passes a
threshold set for 99.9% precision on right vs wrong candidates. Here that threshold is the
probability of a logistic regression over the inlier count (and the share of tentative matches
that are inliers), so that ``confidence`` is a probability:

    P(right | match) = 1 / (1 + exp(-(b0 + b1 * log(1 + inliers) + b3 * [no camera])))

fitted by `astroloc bench acceptance` on every candidate `astroloc bench localize` (demo world)
and `astroloc bench real` (real photos) refine (right: a plausible outline whose IoU with the
truth is >= 0.5, or centre-right on the real set; wrong: everything else, refused outlines
included), and
thresholded at the smallest probability above which 99.9% of the *answers* are right: each
photo's most probable accepted candidate, what a user gets (the benchmark tells the fit which
photo each candidate belongs to). Over single candidates, EarthMatch's rule, a wrong candidate
with many inliers forbids every threshold below it even when, on its photo, a right candidate
with more inliers is the answer: on the demo world the "right place, loose outline" near-misses
(IoU 0.41-0.50 at 60-107 inliers) set that rule's threshold at 108 inliers, refusing a third of
the right answers; the rule over candidates remains for fits without photos. (``b2``,
a term in the share of tentative matches that are inliers, is kept at 0: refused candidates have
no such share to fit it on.) ``b3`` applies when no resected camera explains the inliers
(geo.resection refused them, and the corners are the homography's): on the demo world every wrong
candidate that kept a plausible outline was such a one (12 of 53 homography outlines, against 0 of
1759 camera ones), so those outlines need more inliers to be believed, and the camera ones fewer.
Inliers alone cannot tell a tight outline from a loose one on the right place (the
"right place, loose outline" near-misses), so a second, geometric criterion follows: the photo's
corners must agree between the last two EarthMatch iterations (``corner_shift``, in units of the
outline's diagonal), as a converged fit does.

Each answer carries ``corner_uncertainty_km`` per corner: the spread of the corners over
homographies refitted on resamples of the inliers, combined with their last-iteration shift, in
km, scaled by ``uncertainty_scale`` (also fitted by the benchmark: the factor at which the band
covers the true corner error of 90% of right answers) plus ``uncertainty_floor_km`` (the scale of
the imagery's texture).

Pure: numpy (and scikit-learn, imported by :func:`fit_acceptance` only).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# The share of right answers whose true corner error the uncertainty band must cover.
UNCERTAINTY_COVERAGE = 0.9
TARGET_PRECISION = 0.999


@dataclass(frozen=True)
class Acceptance:
    """A fitted acceptance rule (defaults: the service's, the fit of `astroloc bench acceptance` on real
    and demo-world candidates together, docs/benchmarks.md)."""

    # Fitted by `astroloc bench acceptance` (2026-12-07 20:20) on the candidates of `astroloc bench
    # localize --photos 1000` (the demo world's 212 test photos, 2120 candidates, 4 wrong with a plausible
    # outline) and `astroloc bench real` (16 real ISS photos against their 160 real Sentinel-2 candidates,
    # every wrong one refused by geometry), thresholded at 99.9% precision over answers; cross-fitted, 0
    # wrong answers in either world (docs/benchmarks.md, "Acceptance fitted on real and demo-world
    # candidates"). No wrong candidate with a plausible outline was ever a photo's most probable one, so
    # the threshold is not identifiable and falls to the lowest probability seen: RefineParams.min_inliers
    # (8) and the corner-shift limit are what refuse (docs/refinement.md).
    intercept: float = -5.46
    coef_log_inliers: float = 2.81
    coef_inlier_ratio: float = 0.0
    coef_no_camera: float = -1.17  # added when no camera explains the inliers (the homography's corners)
    min_probability: float = 0.004235  # below the inlier floor of 8 for every outline
    max_corner_shift: float = 0.19  # corners may move this much (x outline diagonal) in the last iteration
    uncertainty_scale: float = 1.19
    uncertainty_floor_km: float = 5.0
    fitted_on: dict = field(default_factory=dict)  # what the fit saw (candidates, precision reached ...)

    def probability(self, inliers: int, inlier_ratio: float, camera: bool = True) -> float:
        """P(the candidate's outline is right | its inliers, whether a camera explains them), from
        the logistic model."""
        z = (self.intercept + self.coef_log_inliers * math.log1p(max(0, inliers)) + self.coef_inlier_ratio * inlier_ratio
             + (0.0 if camera else self.coef_no_camera))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def probability_of(self, scored: Scored) -> float:
        """:meth:`probability` of a refined candidate as the fit sees it."""
        return self.probability(scored.inliers, scored.inlier_ratio, scored.camera or not scored.plausible)

    def refusal(self, probability: float, corner_shift: float | None) -> str | None:
        """Why a non-degenerate match is refused, or None when it is accepted."""
        if probability < self.min_probability:
            return f"confidence {probability:.3f} below the calibrated {self.min_probability:.3f}"
        if corner_shift is not None and corner_shift > self.max_corner_shift:
            return (f"outline not converged: corners moved {corner_shift:.1%} of the outline in the last "
                    f"iteration (at most {self.max_corner_shift:.1%})")
        return None

    def uncertainty_km(self, spread_km: np.ndarray) -> list[float] | None:
        """The calibrated band per corner (None when the spread is unknown). Rounded up, so that
        the band never shrinks below the calibrated one."""
        spread_km = np.asarray(spread_km, float)
        if not np.isfinite(spread_km).all():
            return None
        return [math.ceil(float(self.uncertainty_scale * s + self.uncertainty_floor_km) * 100.0) / 100.0
                for s in spread_km]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Acceptance:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        # A fit written before a term existed was fitted without it: the term is 0 there, not the
        # default of another fit.
        known.setdefault("coef_no_camera", 0.0)
        return cls(**known)

    @classmethod
    def load(cls, path: Path | str) -> Acceptance:
        return cls.from_json(json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class Scored:
    """One refined candidate as the fit sees it."""

    inliers: int
    inlier_ratio: float
    corner_shift: float | None
    right: bool  # its outline's IoU with the truth >= 0.5
    spread_km: tuple[float, ...] | None = None  # per corner, before scaling
    corner_error_km: tuple[float, ...] | None = None  # per corner, against the truth
    plausible: bool = True  # False: the outline was refused (no footprint): a wrong candidate
    camera: bool = True  # a resected camera gave the corners (False: the homography's)


def fit_acceptance(scored: list[Scored], precision: float = TARGET_PRECISION,
                   base: Acceptance | None = None, photos: list | None = None) -> Acceptance:
    """Fit the logistic model on right vs wrong candidates, the probability threshold for
    ``precision``, the corner-shift limit and the uncertainty scale (see the module docstring).
    ``photos``: the photo of each candidate (any hashable), for the precision of answers; None:
    the precision over candidates."""
    from sklearn.linear_model import LogisticRegression

    base = base or Acceptance()
    usable = list(scored)
    labels = np.array([s.right for s in usable])
    if len(usable) < 10 or labels.all() or not labels.any():
        raise ValueError(f"need right and wrong candidates to fit on ({int(labels.sum())} right of {len(usable)})")
    # The camera term is over plausible outlines only: a refused one has no corners to judge.
    no_camera = np.array([s.plausible and not s.camera for s in usable], float)
    x = np.column_stack([[math.log1p(s.inliers) for s in usable], no_camera])
    if not no_camera.any():  # nothing to fit it on
        x = x[:, :1]
    model = LogisticRegression(C=10.0, max_iter=1000).fit(x, labels)
    b1, b0, b2 = model.coef_[0][0], model.intercept_[0], 0.0
    b3 = model.coef_[0][1] if x.shape[1] > 1 else 0.0
    fitted = Acceptance(float(b0), float(b1), float(b2), float(b3), base.min_probability, base.max_corner_shift,
                        base.uncertainty_scale, base.uncertainty_floor_km)
    probabilities = np.array([fitted.probability_of(s) for s in usable])

    # The geometric criterion first: a shift limit that keeps 99% of right outlines.
    shifts = np.array([s.corner_shift if s.corner_shift is not None else 0.0 for s in usable])
    max_shift = float(max(base.max_corner_shift, np.quantile(shifts[labels], 0.99))) if labels.any() else base.max_corner_shift
    passes = shifts <= max_shift
    # The smallest probability above which what passes both criteria is `precision` right.
    if photos is not None and len(photos) != len(usable):
        raise ValueError(f"{len(photos)} photos given for {len(usable)} candidates")

    def judged(threshold: float) -> np.ndarray:  # what the precision is taken over at this threshold
        kept = passes & (probabilities >= threshold)
        return kept if photos is None else _answers(kept, probabilities, photos)

    threshold = 1.0
    for p in np.unique(np.round(probabilities, 6)):
        mask = judged(p)
        if mask.any() and labels[mask].mean() >= precision:
            threshold = float(p)
            break
    accepted_right = [s for s, p, ok in zip(usable, probabilities, passes, strict=True) if s.right and ok and p >= threshold]
    scale = fit_uncertainty_scale(accepted_right, base.uncertainty_floor_km, default=base.uncertainty_scale)
    kept, reached = passes & (probabilities >= threshold), judged(threshold)
    return Acceptance(
        float(b0), float(b1), float(b2), float(b3), min_probability=threshold, max_corner_shift=max_shift,
        uncertainty_scale=scale, uncertainty_floor_km=base.uncertainty_floor_km,
        fitted_on={"candidates": len(usable), "right": int(labels.sum()), "accepted": int(kept.sum()),
                   "precision": round(float(labels[reached].mean()), 5) if reached.any() else None,
                   "target_precision": precision, "corner_coverage": UNCERTAINTY_COVERAGE,
                   "precision_over": "candidates" if photos is None else "answers"},
    )


def _answers(kept: np.ndarray, probabilities: np.ndarray, photos: list) -> np.ndarray:
    """Mask of each photo's most probable kept candidate (what the service answers)."""
    best: dict = {}
    for i in np.flatnonzero(kept):
        if photos[i] not in best or probabilities[i] > probabilities[best[photos[i]]]:
            best[photos[i]] = i
    mask = np.zeros(len(kept), dtype=bool)
    mask[list(best.values())] = True
    return mask


def fit_uncertainty_scale(right_answers: list[Scored], floor_km: float, default: float = 3.0) -> float:
    """The factor on the corner spread at which ``spread * factor + floor_km`` covers all four
    corners' true errors for :data:`UNCERTAINTY_COVERAGE` of the right answers."""
    # Per answer, its worst-covered corner.
    ratios = [max((e - floor_km) / max(sp, 1e-3) for e, sp in zip(s.corner_error_km, s.spread_km, strict=True))
              for s in right_answers if s.spread_km and s.corner_error_km and np.all(np.isfinite(s.spread_km))]
    if not ratios:
        return default
    return float(max(0.0, np.quantile(ratios, UNCERTAINTY_COVERAGE, method="higher")))
