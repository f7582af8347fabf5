"""POST /train's body, parsed before anything is queued: types, bounds, the architecture from the
model registry, and paths only inside the data directory or the model store.

The fields are model.training.TrainConfig's own (one definition); this module only adds what a
request may ask for (docs/operations.md, "Limits"). A refused request answers 422 with a message
that names the field and never tells whether a file outside the service's directories exists.
"""

from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from service.config import Settings
from service.errors import InvalidInput
from service.jobs import redact_paths

MAX_ZOOM = 22
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class TrainRequestInvalid(InvalidInput):
    """POST /train's body is refused: ``problems`` is one {loc, msg, type} entry per field."""

    def __init__(self, problems: list[dict]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems))
        self.problems = problems


def _bounds(settings: Settings) -> dict[str, dict]:
    return {
        "iterations": dict(ge=0, le=settings.train_max_iterations),  # 0: a closed-form head alone (TrainConfig.check)
        "batch_pairs": dict(ge=1, le=settings.train_max_batch),
        "batch_quads": dict(ge=1, le=settings.train_max_batch),
        "threads": dict(ge=1, le=settings.train_max_threads),
        "clusters": dict(ge=1, le=10_000),
        "mining_every": dict(ge=1, le=settings.train_max_iterations),
        "checkpoint_every": dict(ge=1, le=settings.train_max_iterations),
        "validate_every": dict(ge=0, le=settings.train_max_iterations),
        "validation_queries": dict(ge=0, le=1_000_000),
        "lr_warmup": dict(ge=0, le=settings.train_max_iterations),
        "head_warmup": dict(ge=0, le=settings.train_max_iterations),
        "frozen_stages": dict(ge=0, le=16),
        "lr": dict(gt=0, le=1, allow_inf_nan=False),
        "trunk_lr_scale": dict(ge=0, le=100, allow_inf_nan=False),
        "t_iou": dict(gt=0, lt=1),
        "seed": dict(ge=0, le=2**31 - 1),
        "name": dict(pattern=NAME_PATTERN),
        "world_dir": dict(min_length=1, max_length=4096),
        "train_world_dir": dict(min_length=1, max_length=4096),
        "init_weights": dict(min_length=1, max_length=4096),
    } | {name: dict(ge=0, le=1e6, allow_inf_nan=False)
         for name in ("alpha_1", "beta_1", "alpha_2", "beta_2", "lambda_1", "lambda_2")}


@lru_cache(maxsize=4)
def _request_model(bounds_key: tuple) -> type[BaseModel]:
    from model.training import TrainConfig  # torch loads with the first training request

    bounds = dict(bounds_key)
    hints = typing.get_type_hints(TrainConfig)
    hints["zooms"] = Annotated[list[Annotated[int, Field(ge=0, le=MAX_ZOOM)]],
                               Field(min_length=1, max_length=MAX_ZOOM + 1)] | None
    definitions = {}
    for spec in dataclasses.fields(TrainConfig):
        default = spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()
        definitions[spec.name] = (hints[spec.name], Field(default, **dict(bounds.get(spec.name, ()))))
    # strict: {"iterations": "abc"}, {"lr": "x"}, {"t_iou": null}, {"threads": true} are refused.
    return create_model("TrainRequest", __config__=ConfigDict(strict=True, extra="forbid"), **definitions)


def _inside(settings: Settings, field: str, value: str) -> Path:
    """``value`` (relative: to the data directory) resolved, if it lies in the data directory or
    the model store; the message does not say whether anything exists elsewhere."""
    roots = [settings.data_dir.resolve(), settings.resolved_model_store_dir.resolve()]
    path = Path(value)
    path = (path if path.is_absolute() else settings.data_dir / path).resolve()
    if not any(path == root or root in path.parents for root in roots):
        raise TrainRequestInvalid([{"loc": ["body", field], "type": "path_outside",
                                    "msg": "must lie inside the service's data directory or model store"}])
    return path


def parse_train_request(settings: Settings, body: object):  # -> model.training.TrainConfig
    """POST /train's JSON body as a checked TrainConfig (TrainRequestInvalid otherwise)."""
    from model import list_models
    from model.training import TrainConfig, training_photos

    if not isinstance(body, dict):
        raise TrainRequestInvalid([{"loc": ["body"], "type": "dict_type", "msg": "the body is a JSON object"}])
    known = [spec.name for spec in dataclasses.fields(TrainConfig)]
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise TrainRequestInvalid([{"loc": ["body", name], "type": "extra_forbidden",
                                    "msg": f"unknown training option; known: {', '.join(known)}"} for name in unknown])
    model = _request_model(tuple((k, tuple(v.items())) for k, v in _bounds(settings).items()))
    try:
        values = model.model_validate(body).model_dump()
    except ValidationError as exc:
        raise TrainRequestInvalid([{"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                                   for e in exc.errors()]) from None
    if values["arch"] not in list_models():
        raise TrainRequestInvalid([{"loc": ["body", "arch"], "type": "unknown_architecture",
                                    "msg": f"unknown architecture; registered: {', '.join(list_models())}"}])
    try:
        TrainConfig.from_dict(values)  # its own checks (losses, sampling, schedule, ...), before any path
    except ValueError as exc:
        raise TrainRequestInvalid([{"loc": ["body"], "type": "value_error", "msg": str(exc)}]) from None
    world = _inside(settings, "world_dir", body["world_dir"]) if "world_dir" in body else \
        settings.resolved_world_dir.resolve()
    train_world = None if values["train_world_dir"] is None else \
        _inside(settings, "train_world_dir", values["train_world_dir"])
    weights = None if values["init_weights"] is None else _inside(settings, "init_weights", values["init_weights"])
    for field, path in (("world_dir", world), ("train_world_dir", train_world)):
        if path is not None and not (path / "world.json").is_file():
            raise TrainRequestInvalid([{"loc": ["body", field], "type": "no_world",
                                        "msg": "no built world there (world.json missing)"}])
    if train_world is not None:
        try:  # a training world on held-out ground is refused here, not by the worker later
            training_photos(world, train_world)
        except (ValueError, OSError) as exc:
            raise TrainRequestInvalid([{"loc": ["body", "train_world_dir"], "type": "value_error",
                                        "msg": redact_paths(settings, str(exc))}]) from None
    values["world_dir"] = str(world)
    values["train_world_dir"] = None if train_world is None else str(train_world)
    if weights is not None:
        if not weights.is_file():
            raise TrainRequestInvalid([{"loc": ["body", "init_weights"], "type": "no_file",
                                        "msg": "no such file in the data directory or model store"}])
        values["init_weights"] = str(weights)
    return TrainConfig.from_dict(values)
