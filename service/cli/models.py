"""`astroloc model ...`: the model store from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

from service import artifacts, crud
from service.cli.common import ALL_TILES, MAX_LAT, TILES_DIR, URL_TEMPLATE, fail, print_json
from service.config import get_settings
from service.db import session_scope

app = typer.Typer(no_args_is_help=True)


def version_summary(version) -> dict:  # noqa: ANN001
    return {
        "id": version.id,
        "name": version.name,
        "kind": version.kind,
        "architecture": version.architecture,
        "sha256": version.sha256,
        "size_bytes": version.size_bytes,
        "active": version.active,
        "metrics": version.metrics,
        "created_at": version.created_at,
    }


@app.command("list")
def list_versions(kind: str = typer.Option(None, help="Only this kind.")) -> None:
    """List model versions, newest first."""
    settings = get_settings()
    with session_scope(settings.resolved_database_url) as session:
        print_json([version_summary(v) for v in crud.list_model_versions(session, kind)])


@app.command("import")
def import_weights(
    file: Path = typer.Argument(..., help="A PyTorch state_dict (.pt/.pth/.ckpt)."),
    arch: str = typer.Option(..., help="Registered architecture, e.g. astroloc, earthloc."),
    name: str = typer.Option(None, help="Version name; default: the file name."),
    activate: bool = typer.Option(False, help="Make it the active retrieval model."),
) -> None:
    """Check that FILE loads into ARCH (strictly), then publish it as a retrieval version."""
    from model import create_model

    if not file.is_file():
        fail(f"no such file: {file}")
    try:
        create_model(arch, weights=file)
    except (ValueError, KeyError, RuntimeError) as exc:
        fail(f"{file} does not load into {arch}: {exc}")
    version = artifacts.publish(
        get_settings(), file, name=name or file.stem, kind="retrieval", architecture=arch,
        activate=activate,
    )
    print_json(version_summary(version))


@app.command()
def activate(version_id: int = typer.Argument(..., help="Id from `astroloc model list`.")) -> None:
    """Make a version the active one of its kind."""
    try:
        print_json(version_summary(artifacts.activate(get_settings(), version_id)))
    except LookupError as exc:
        fail(str(exc))


@app.command()
def centre(
    tiles_dir: Path = TILES_DIR,
    url_template: str = URL_TEMPLATE,
    max_lat: float = MAX_LAT,
    all_tiles: bool = ALL_TILES,
    zooms: str = typer.Option(None, help="Zoom levels, e.g. 9-11; default the world's zooms."),
    sample: int = typer.Option(2000, min=1, help="Tiles drawn from the database for the mean."),
    seed: int = typer.Option(0, help="Seed of the draw."),
    version_id: int = typer.Option(None, "--version", help="Retrieval version id; default: active."),
    name: str = typer.Option(None, help="Name of the new version; default: the parent's name + '-centred'."),
    activate: bool = typer.Option(False, help="Make it the active retrieval model."),
    progress: bool = typer.Option(True, help="Progress bar."),
) -> None:
    """Centre a retrieval model's linear head on the database's imagery (no labels): run it on
    every database of imagery other than the one its head was fitted on (the demo model: Blue
    Marble) before `astroloc index build`; publishes a new version."""
    from service import indexing

    settings = get_settings()
    try:
        source, tiles, zoom_list = indexing.database_tiles(settings, tiles_dir, url_template, zooms, steps=1,
                                                           all_tiles=all_tiles, max_lat_deg=max_lat)
        label = url_template or f"local XYZ tiles '{(tiles_dir or settings.resolved_tiles_dir).name}'"
        version = indexing.centre_model(settings, source, tiles, f"{label}, zooms {zoom_list}", version_id=version_id,
                                        sample=sample, seed=seed, name=name, activate=activate, progress=progress)
    except ValueError as exc:
        fail(str(exc))
    print_json(version_summary(version) | {"config": version.config})


@app.command("export-onnx")
def export_onnx(
    version_id: int = typer.Option(None, "--version", help="Retrieval version id; default: active."),
    activate: bool = typer.Option(True, help="Make the ONNX graph the active serving model."),
) -> None:
    """Export a retrieval version to ONNX (parity-checked) and publish it as `retrieval-onnx`."""
    import tempfile

    import model

    settings = get_settings()
    try:
        if version_id is None:
            found = artifacts.active_artifact(settings, "retrieval")
            if found is None:
                fail("no active retrieval model; import one or pass --version")
            source, path = found
        else:
            source = artifacts.get_version(settings, version_id)
            path = artifacts.model_store(settings).verify(Path(source.path), source.sha256)
    except (LookupError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    if source.kind != "retrieval":
        fail(f"version {source.id} is a {source.kind}, not a retrieval model")
    net = model.create_model(source.architecture, weights=path)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = model.export_onnx(net, Path(tmp) / f"{source.name}.onnx")
        version = artifacts.publish(
            settings, onnx_path, name=f"{source.name}-onnx", kind="retrieval-onnx",
            architecture=source.architecture, metrics=source.metrics,
            config={"source_version": source.id, "source_sha256": source.sha256},
            activate=activate,
        )
    print_json(version_summary(version))
