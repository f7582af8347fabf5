"""Deployment files: the compose file parses and every command names a real entry point."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from service.cli import app

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _astroloc_invocations(command: list[str] | str) -> list[list[str]]:
    """`astroloc ...` argument lists inside a service command (plain or `sh -c "a && b"`)."""
    text = command if isinstance(command, str) else " ".join(shlex.quote(c) for c in command)
    if isinstance(command, list) and command[:2] == ["sh", "-c"]:
        text = command[2]
    parts = re.split(r"&&|;", text)
    return [shlex.split(p)[1:] for p in parts if shlex.split(p) and shlex.split(p)[0] == "astroloc"]


def test_compose_has_the_services_and_volumes():
    compose = _compose()
    assert {"api", "worker", "trainer", "postgis", "redis"} <= set(compose["services"])
    for name in ("api", "worker", "trainer"):
        service = compose["services"][name]
        assert service["environment"]["ASTROLOC_QUEUE_MODE"] == "rq"
        assert any(v.endswith(":/models") for v in service["volumes"])
        assert any(v.endswith(":/data") for v in service["volumes"])
    assert "train" in compose["services"]["trainer"]["command"]


def test_every_service_command_is_a_real_entry_point():
    runner = CliRunner()
    checked = 0
    for name in ("api", "worker", "trainer"):
        for argv in _astroloc_invocations(_compose()["services"][name]["command"]):
            # --help of the exact sub-command proves it exists and its options parse.
            options = [a for a in argv if a.startswith("--")]
            words = [a for a in argv if not a.startswith("-")][:2]
            result = runner.invoke(app, [*_leading_commands(words), "--help"])
            assert result.exit_code == 0, (name, argv, result.output)
            for option in options:
                assert option in result.output, (name, option)
            checked += 1
    assert checked >= 4


def _leading_commands(words: list[str]) -> list[str]:
    # `db upgrade` is a group + command; `serve`/`worker` are commands whose next word is a value.
    return words if words and words[0] == "db" else words[:1]


def test_dockerfile_default_command_exists():
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = re.search(r'^CMD \[(.*)\]$', dockerfile, re.M).group(1)
    argv = [a.strip().strip('"') for a in cmd.split(",")]
    assert argv[:2] == ["astroloc", "serve"]
    assert "torch==2.14.1" in dockerfile and "torchvision==0.29.1" in dockerfile


def test_dockerfile_builds_the_web_map_from_its_lock_file():
    """The API serves frontend/dist at /: the image builds it with npm ci and copies only dist."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM node:\S+ AS web$", dockerfile, re.M)
    assert "npm ci" in dockerfile and "package-lock.json" in dockerfile
    assert "COPY --from=web /web/dist frontend/dist" in dockerfile
    assert (ROOT / "frontend" / "package-lock.json").is_file()
