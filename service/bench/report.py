"""docs/benchmarks.md: each `astroloc bench ...` command rewrites its own section in place."""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

import os

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Every figure here comes from a command in this repository; rerun it to reproduce. Each section
says the command, when it ran and on what machine.
"""


def machine_description() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, title: str, command: str, body: str, doc: Path = DOC) -> Path:
    """Replace (or append) the section ``name`` of the benchmarks document."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n## {title}\n\n"
        f"Command: `{command}` ({stamp}; {machine_description()})\n\n{body.strip()}\n"
        f"<!-- /bench:{name} -->\n"
    )
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else f"{text.rstrip()}\n\n{section}"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return doc
