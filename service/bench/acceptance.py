"""`astroloc bench acceptance`: the refinement's acceptance fitted on real and demo-world
candidates together, cross-fitted.

It reads the candidates the last `astroloc bench localize` (demo world) and `astroloc bench real`
(real ISS photos against real Sentinel-2 candidates) saved, fits geo.acceptance on all of them at
once (99.9% precision over answers: each photo's most probable accepted candidate), and judges
every photo by the fit on the other half of the photos (alternate photos of each set), so that no
photo's own candidates set its threshold. The real set's wrong candidates (other places entirely)
are the only real negatives we have. A real candidate counts as right when its outline is right or
centre-right (the truth's outline is uneven for some photos, its centre is firm: bench real).

The fit printed here is what geo.acceptance.Acceptance's defaults hold: the service's acceptance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from geo.acceptance import Acceptance, Scored, fit_acceptance
from service.bench import localize as demo_bench
from service.bench import real as real_bench
from service.config import Settings


@dataclass
class PhotoCandidates:
    world: str  # demo | real
    photo_id: str
    scored: list[Scored]


def load_candidates(settings: Settings, split: str = "test") -> list[PhotoCandidates]:
    """Every photo's refined candidates from both benchmarks' saved outcomes."""
    demo_path, real_path = demo_bench.outcomes_path(settings, split), real_bench.outcomes_path(settings)
    missing = [f"{p} (run `astroloc bench {b}`)" for p, b in ((demo_path, "localize --photos 1000"), (real_path, "real"))
               if not p.is_file()]
    if missing:
        raise ValueError("no saved outcomes at " + " and ".join(missing))
    identity = json.loads(demo_path.read_text())["identity"]
    photos = [PhotoCandidates("demo", o.photo_id, [s for s, _, _ in o.scored])
              for o in demo_bench.load_outcomes(demo_path, identity)]
    _, real = real_bench.load_outcomes(real_path)
    photos += [PhotoCandidates("real", o.photo_id, [c.scored() for c in o.candidates]) for o in real]
    return photos


def fit(photos: list[PhotoCandidates]) -> Acceptance:
    return fit_acceptance([s for p in photos for s in p.scored],
                          photos=[(p.world, p.photo_id) for p in photos for _ in p.scored])


def answer(acceptance: Acceptance, scored: list[Scored]) -> Scored | None:
    """What the service answers for one photo under ``acceptance``: its most probable accepted
    candidate (None: refused)."""
    accepted = [(acceptance.probability_of(s), s) for s in scored
                if s.plausible and acceptance.refusal(acceptance.probability_of(s), s.corner_shift) is None]
    return max(accepted, key=lambda ps: ps[0])[1] if accepted else None


def cross_fitted(photos: list[PhotoCandidates]) -> dict[tuple[str, str], Scored | None]:
    """Each photo's answer under the fit on the other half (alternate photos of each world)."""
    halves: tuple[list, list] = ([], [])
    for world in ("demo", "real"):
        of_world = [p for p in photos if p.world == world]
        halves[0].extend(of_world[0::2])
        halves[1].extend(of_world[1::2])
    answers = {}
    for held, other in ((halves[0], halves[1]), (halves[1], halves[0])):
        half_fit = fit(other)
        for p in held:
            answers[(p.world, p.photo_id)] = answer(half_fit, p.scored)
    return answers


def run(settings: Settings) -> tuple[str, Acceptance]:
    photos = load_candidates(settings)
    fitted = fit(photos)
    answers = cross_fitted(photos)
    rows = ["| world | photos | candidates | wrong candidates with a plausible outline | answered | right | wrong | "
            "refused | precision |", "|---|---|---|---|---|---|---|---|---|"]
    for world, name in (("demo", "demo world (bench localize, test split)"), ("real", "real photos (bench real)")):
        of_world = [p for p in photos if p.world == world]
        given = [answers[(p.world, p.photo_id)] for p in of_world]
        taken = [a for a in given if a is not None]
        right = sum(a.right for a in taken)
        rows.append(f"| {name} | {len(of_world)} | {sum(len(p.scored) for p in of_world)} | "
                    f"{sum(s.plausible and not s.right for p in of_world for s in p.scored)} | {len(taken)} | {right} | "
                    f"{len(taken) - right} | {len(given) - len(taken)} | "
                    f"{right / len(taken) if taken else float('nan'):.1%} |")
    summary = (
        f"Fitted on {fitted.fitted_on['candidates']} candidates of {len(photos)} photos ({fitted.fitted_on['right']} "
        f"right): P(right) = 1 / (1 + exp(-({fitted.intercept:.2f} + {fitted.coef_log_inliers:.2f} ln(1 + inliers) "
        f"{fitted.coef_no_camera:+.2f} [no camera explains the inliers]))); accepted when P >= "
        f"{fitted.min_probability:.4f} and the corners moved at most {fitted.max_corner_shift:.1%} of the outline in "
        f"the last iteration; corner_uncertainty_km = {fitted.uncertainty_scale:.2f} x spread + "
        f"{fitted.uncertainty_floor_km:g} km. Precision over answers on the data it was fitted on: "
        f"{fitted.fitted_on['precision']:.2%} (target {fitted.fitted_on['target_precision']:.1%}). The service's "
        f"acceptance (geo.acceptance.Acceptance) {'is' if _same(fitted, Acceptance()) else 'is NOT'} this fit.")
    return "\n\n".join([summary, "Cross-fitted (each photo judged by the fit on the other half of the photos):",
                        "\n".join(rows)]), fitted


def _same(a: Acceptance, b: Acceptance) -> bool:
    return all(abs(getattr(a, k) - getattr(b, k)) < 5e-3 * max(1.0, abs(getattr(b, k)))
               for k in ("intercept", "coef_log_inliers", "coef_no_camera", "min_probability", "max_corner_shift"))


def as_json(acceptance: Acceptance) -> str:
    return json.dumps(acceptance.to_json(), indent=1)
