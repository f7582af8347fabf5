"""Batch ingestion: push a NASA-style photo catalogue through the REST API, resumably.

A client of the service (it works against a remote deployment with its API key): it reads a
catalogue CSV in the EOL layout (MISSION, ROLL, FRAME, YYYYMMDD, NADIR_LAT/LON, optional PTIME,
FCLT, TILT, CLDP, the 4 footprint corners), validates every row, finds each photo's image (a
directory, a path column, or a URL template fetched with retries into a cache), submits with
bounded concurrency to POST /localize, polls GET /jobs/{id} and writes the results.

Resumable and never duplicating: every submission and every final result is appended to
``state.jsonl`` in the output directory before anything else happens, so a re-run skips what is
done and re-polls what was submitted; the server's idempotency by photo_id (same id + same image
returns the existing job) covers the window between a submission and its state line.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pyproj import Geod

from geo import footprint_polygon
from geo.eol import CORNER_COLUMNS, CORNER_NAMES, NADIR_COLUMNS, PHOTO_ID_COLUMNS, row_corners, row_photo_id
from index.files import write_csv

log = logging.getLogger(__name__)

# The columns read: EOL's (geo.eol) plus the fuller EOL database's PTIME (HHMMSS), FCLT (focal length),
# TILT and CLDP (cloud cover), and ours: CAPTURE_TIME (ISO 8601) and PATH (the image).
CANONICAL = (PHOTO_ID_COLUMNS + ("YYYYMMDD", "PTIME", "CAPTURE_TIME") + NADIR_COLUMNS
             + ("PATH", "FCLT", "TILT", "CLDP") + CORNER_COLUMNS)
PHOTO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
MAX_CORNER_DISTANCE_KM = 2300.0  # beyond the ISS horizon at any tilt: a metadata error
IMAGE_SUFFIXES = (".JPG", ".jpg", ".jpeg", ".JPEG", ".png", ".PNG", ".tif", ".TIF")
FINAL = ("localized", "not_localized", "failed")
_GEOD = Geod(ellps="WGS84")


@dataclass
class CatalogueRow:
    line: int  # 1-based line of the CSV (the header is line 1)
    photo_id: str
    captured_at: datetime | None
    nadir: tuple[float, float] | None
    reference: list[tuple[float, float]] | None  # the catalogue's corners, (lat, lon) LL UL UR LR
    path: str | None
    flags: list[str] = field(default_factory=list)


@dataclass
class Reject:
    line: int
    photo_id: str | None
    reason: str


def read_catalogue(path: Path, column_map: dict[str, str] | None = None) -> Iterator[CatalogueRow | Reject]:
    """Each data row of a catalogue CSV, validated: a CatalogueRow, or a Reject with the reason.

    ``column_map`` maps our column names (CANONICAL) to the file's, for other layouts.
    """
    column_map = column_map or {}
    unknown = sorted(set(column_map) - set(CANONICAL))
    if unknown:
        raise ValueError(f"unknown column(s) in the mapping: {unknown}; known: {list(CANONICAL)}")
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = set(reader.fieldnames or [])
        name = {c: column_map.get(c, c) for c in CANONICAL}
        if name["PATH"] not in header and "URL" in header and "PATH" not in column_map:
            name["PATH"] = "URL"  # the world's CSV and EOL's give the image location there
        missing = [c for c in PHOTO_ID_COLUMNS if name[c] not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {[name[c] for c in missing]} (use a column map)")
        for number, raw in enumerate(reader, start=2):
            value = {c: (raw.get(name[c]) or "").strip() for c in CANONICAL}
            yield _validate(number, value)


def _validate(line: int, v: dict[str, str]) -> CatalogueRow | Reject:
    photo_id = row_photo_id(v)
    if not all(v[c] for c in PHOTO_ID_COLUMNS) or not PHOTO_ID.match(photo_id):
        return Reject(line, photo_id or None, f"bad photo id {photo_id!r} (MISSION-ROLL-FRAME)")
    try:
        captured = _capture_time(v)
    except ValueError as exc:
        return Reject(line, photo_id, str(exc))
    nadir = None
    if v["NADIR_LAT"] or v["NADIR_LON"]:
        try:
            nadir = (float(v["NADIR_LAT"]), float(v["NADIR_LON"]))
        except ValueError:
            return Reject(line, photo_id, f"nadir ({v['NADIR_LAT']!r}, {v['NADIR_LON']!r}) is not a number")
        if not (-90 <= nadir[0] <= 90 and -180 <= nadir[1] <= 180) or any(map(math.isnan, nadir)):
            return Reject(line, photo_id, f"nadir ({nadir[0]}, {nadir[1]}) is out of range")
    reference, flags = None, []
    if any(v[f"{c}_LAT"] for c in CORNER_NAMES):
        try:
            reference = row_corners(v)
            footprint_polygon(reference)
        except ValueError as exc:
            flags.append(f"catalogue corners unusable: {exc}")
            reference = None
    if reference and nadir:
        far = max(_GEOD.inv(nadir[1], nadir[0], lon, lat)[2] for lat, lon in reference) / 1000.0
        if far > MAX_CORNER_DISTANCE_KM:
            flags.append(f"a corner lies {far:.0f} km from the nadir (> {MAX_CORNER_DISTANCE_KM:.0f}): metadata error?")
    return CatalogueRow(line, photo_id, captured, nadir, reference, v["PATH"] or None, flags)


def _capture_time(v: dict[str, str]) -> datetime | None:
    if v["CAPTURE_TIME"]:
        try:
            when = datetime.fromisoformat(v["CAPTURE_TIME"])
        except ValueError:
            raise ValueError(f"bad capture time {v['CAPTURE_TIME']!r} (ISO 8601)") from None
        if when.tzinfo is None:
            raise ValueError(f"capture time {v['CAPTURE_TIME']!r} has no time zone")
        return when
    if not v["YYYYMMDD"]:
        return None
    if not v["PTIME"]:
        return None  # a date alone cannot place the ISS (16 orbits a day): search worldwide
    try:
        return datetime.strptime(v["YYYYMMDD"] + v["PTIME"].zfill(6), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"bad date/time {v['YYYYMMDD']!r} {v['PTIME']!r} (YYYYMMDD, HHMMSS)") from None


# --- images ------------------------------------------------------------------------------------


class ImageFinder:
    """Where a row's image is: ``images_dir/<photo_id>.JPG`` (or another suffix), the row's path
    (relative to the catalogue's folder), or ``url_template`` (``{photo_id}``, ``{mission}``...)
    downloaded with retries into ``cache_dir``."""

    def __init__(self, catalogue: Path, images_dir: Path | None = None, url_template: str | None = None,
                 cache_dir: Path | None = None, retries: int = 3, timeout_s: float = 30.0) -> None:
        self.base = Path(catalogue).parent
        self.images_dir, self.url_template = images_dir, url_template
        self.cache_dir = cache_dir
        self.retries, self.timeout_s = retries, timeout_s

    def find(self, row: CatalogueRow) -> Path:
        """The image file (downloaded if need be); FileNotFoundError with the places tried."""
        tried = []
        if self.images_dir is not None:
            for suffix in IMAGE_SUFFIXES:
                candidate = self.images_dir / f"{row.photo_id}{suffix}"
                if candidate.is_file():
                    return candidate
            tried.append(str(self.images_dir / f"{row.photo_id}.JPG"))
        if row.path and not row.path.startswith(("http://", "https://")):
            candidate = self.base / row.path
            if candidate.is_file():
                return candidate
            tried.append(str(candidate))
        if self.url_template is not None:
            return self._download(row)
        raise FileNotFoundError(f"image not found (tried {', '.join(tried) or 'nothing: give --images'})")

    def _download(self, row: CatalogueRow) -> Path:
        mission, roll, frame = row.photo_id.split("-", 2)
        url = self.url_template.format(photo_id=row.photo_id, mission=mission, roll=roll, frame=frame)
        cache = (self.cache_dir or self.base / "image-cache") / f"{row.photo_id}{Path(url).suffix or '.jpg'}"
        if cache.is_file():
            return cache
        cache.parent.mkdir(parents=True, exist_ok=True)
        last = None
        for attempt in range(self.retries + 1):
            try:
                answer = httpx.get(url, timeout=self.timeout_s, follow_redirects=True)
                if answer.status_code == 404:
                    raise FileNotFoundError(f"image not found at {url} (404)")
                answer.raise_for_status()
                temporary = cache.with_suffix(cache.suffix + ".part")
                temporary.write_bytes(answer.content)
                temporary.replace(cache)
                return cache
            except httpx.HTTPError as exc:
                last = exc
                time.sleep(min(8.0, 0.5 * 2**attempt))
        raise FileNotFoundError(f"image download failed after {self.retries + 1} tries: {url}: {last}")


# --- the run -----------------------------------------------------------------------------------


@dataclass
class IngestOptions:
    api_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    concurrency: int = 4
    refine: bool = True
    search: str = "auto"
    poll_s: float = 1.0
    job_timeout_s: float = 1800.0
    limit: int | None = None


class StateFile:
    """Append-only JSON lines: one per submission and one per final result (fsync'd)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.entries: dict[str, dict] = {}
        if path.is_file():
            for text in path.read_text().splitlines():
                try:
                    entry = json.loads(text)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill: the next run redoes that step
                self.entries[entry["photo_id"]] = {**self.entries.get(entry["photo_id"], {}), **entry}

    def record(self, entry: dict) -> None:
        with self._lock:
            self.entries[entry["photo_id"]] = {**self.entries.get(entry["photo_id"], {}), **entry}
            with self.path.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")
                handle.flush()


def ingest(catalogue: Path, out_dir: Path, finder: ImageFinder, options: IngestOptions,
           column_map: dict[str, str] | None = None, dry_run: bool = False, progress: bool = True) -> dict:
    """Run (or resume) the ingestion of a catalogue; returns the summary. Writes ``state.jsonl``,
    ``results.csv``, ``rejects.csv`` (line, photo_id, reason) and ``flags.csv`` into ``out_dir``."""
    from tqdm import tqdm

    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, rejects, flagged = [], [], []
    for item in read_catalogue(catalogue, column_map):
        if isinstance(item, Reject):
            rejects.append(item)
            continue
        if item.flags:
            flagged.append(item)
        if not dry_run:
            try:
                item.path = str(finder.find(item))
            except FileNotFoundError as exc:
                rejects.append(Reject(item.line, item.photo_id, str(exc)))
                continue
        rows.append(item)
        if options.limit and len(rows) >= options.limit:
            break
    _write_csv(out_dir / "rejects.csv", ["line", "photo_id", "reason"],
               [(r.line, r.photo_id or "", r.reason) for r in rejects])
    _write_csv(out_dir / "flags.csv", ["line", "photo_id", "flag"],
               [(r.line, r.photo_id, flag) for r in flagged for flag in r.flags])
    summary = {"rows": len(rows) + len(rejects), "valid": len(rows), "rejected": len(rejects), "flagged": len(flagged)}
    if dry_run:
        return summary | {"seconds": round(time.monotonic() - started, 1)}

    state = StateFile(out_dir / "state.jsonl")
    todo = [r for r in rows if state.entries.get(r.photo_id, {}).get("status") not in FINAL]
    headers = {"X-API-Key": options.api_key} if options.api_key else {}
    with httpx.Client(base_url=options.api_url, headers=headers, timeout=120) as client, \
            ThreadPoolExecutor(options.concurrency) as pool, \
            tqdm(total=len(rows), initial=len(rows) - len(todo), unit="photo", disable=not progress) as bar:
        futures = [pool.submit(_process, client, row, state, options) for row in todo]
        for future in as_completed(futures):
            future.result()
            bar.update(1)
    results = [state.entries.get(r.photo_id, {}) for r in rows]
    _write_results(out_dir / "results.csv", rows, state)
    counts = {status: sum(r.get("status") == status for r in results) for status in FINAL}
    # "already_done": rows a previous (killed) run finished; they are never submitted again.
    return summary | counts | {"already_done": len(rows) - len(todo), "seconds": round(time.monotonic() - started, 1)}


def _process(client: httpx.Client, row: CatalogueRow, state: StateFile, options: IngestOptions) -> None:
    """Submit (unless a job is already known) and poll one photo to its final state."""
    entry = state.entries.get(row.photo_id, {})
    job_id = entry.get("job_id")
    try:
        if job_id is None:
            job_id = _submit(client, row, options)
            state.record({"photo_id": row.photo_id, "job_id": job_id, "status": "submitted", "line": row.line})
        job = _poll(client, job_id, options)
    except _Refused as exc:
        state.record({"photo_id": row.photo_id, "status": "failed", "reason": str(exc), "line": row.line})
        return
    result = job.get("result") or {}
    if job["status"] == "failed":
        state.record({"photo_id": row.photo_id, "job_id": job_id, "status": "failed", "reason": job.get("error")})
    else:
        state.record({"photo_id": row.photo_id, "job_id": job_id,
                      "status": "localized" if result.get("localized") else "not_localized",
                      "reason": result.get("reason"), "footprint": result.get("footprint"),
                      "area_km2": result.get("area_km2"), "inliers": result.get("inliers"),
                      "confidence": result.get("confidence"), "reference_iou": result.get("reference_iou")})


class _Refused(Exception):
    pass


def _submit(client: httpx.Client, row: CatalogueRow, options: IngestOptions) -> str:
    data = {"photo_id": row.photo_id, "refine": str(options.refine).lower(), "search": options.search}
    if row.captured_at is not None:
        data["timestamp"] = row.captured_at.isoformat()
    if row.nadir is not None:
        data["nadir_lat"], data["nadir_lon"] = str(row.nadir[0]), str(row.nadir[1])
    if row.reference is not None and not row.flags:
        data["reference_footprint"] = json.dumps([[lon, lat] for lat, lon in row.reference])
    media = "image/png" if row.path.lower().endswith(".png") else "image/tiff" if row.path.lower().endswith((".tif", ".tiff")) else "image/jpeg"
    for attempt in range(5):
        try:
            with open(row.path, "rb") as image:
                answer = client.post("/localize", files={"image": (Path(row.path).name, image, media)}, data=data)
        except httpx.TransportError as exc:
            time.sleep(min(10.0, 2**attempt))
            last = f"API unreachable: {exc}"
            continue
        if answer.status_code in (200, 202):
            return answer.json()["job_id"]
        if answer.status_code in (502, 503, 504, 429):
            last = f"{answer.status_code}: {answer.text[:200]}"
            time.sleep(min(10.0, 2**attempt))
            continue
        raise _Refused(f"refused ({answer.status_code}): {_detail(answer)}")
    raise _Refused(f"gave up submitting: {last}")


def _poll(client: httpx.Client, job_id: str, options: IngestOptions) -> dict:
    deadline = time.monotonic() + options.job_timeout_s
    while time.monotonic() < deadline:
        try:
            answer = client.get(f"/jobs/{job_id}")
            if answer.status_code == 404:
                raise _Refused(f"job {job_id} unknown to the service")
            job = answer.json()
            if job["status"] in ("finished", "failed"):
                return job
        except httpx.TransportError:
            pass  # the API restarts: keep polling
        time.sleep(options.poll_s)
    raise _Refused(f"job {job_id} did not end within {options.job_timeout_s:.0f} s")


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail"))
    except (ValueError, AttributeError):
        return answer.text[:200]


def _write_results(path: Path, rows: list[CatalogueRow], state: StateFile) -> None:
    records = []
    for row in rows:
        entry = state.entries.get(row.photo_id, {})
        footprint = entry.get("footprint")
        records.append((row.line, row.photo_id, entry.get("status", "pending"), entry.get("job_id", ""),
                        json.dumps(footprint) if footprint else "", entry.get("area_km2") or "",
                        entry.get("inliers") or "", entry.get("reference_iou") if entry.get("reference_iou") is not None else "",
                        entry.get("reason") or ""))
    _write_csv(path, ["line", "photo_id", "status", "job_id", "footprint_geojson", "area_km2", "inliers",
                      "reference_iou", "reason"], records)


def _write_csv(path: Path, header: list[str], rows: list) -> None:
    write_csv(path, header, (dict(zip(header, row)) for row in rows))


__all__ = ["CatalogueRow", "ImageFinder", "IngestOptions", "Reject", "ingest", "read_catalogue"]
