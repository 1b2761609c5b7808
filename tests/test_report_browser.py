"""reports/latest in a real browser: headless Chromium from Debian renders the page, and what it
renders says the expected verdict, keeps the dry run out of the real section, and is not blank.

Chromium comes from the system packages (``make browser``: ``apt-get install chromium
chromium-driver``); it is never downloaded any other way. Without it this test fails, it does not
skip: the report is what a person reads, so it is checked as one would see it.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lethe.report import refresh_latest, write_run_report

from test_report import result as report_result
from test_report import set_generated_at

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT = 1280, 2000
EXPECTED_VERDICT = (
    "Every rule was kept: nothing past its deadline remains. 2 records were already past their "
    "deadline when the run began (a missed or failed night) and were removed."
)
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)
    if not found:
        pytest.fail(
            "chromium is not installed: run `make browser` (as root: apt-get update && "
            "apt-get install -y --no-install-recommends chromium chromium-driver)",
            pytrace=False,
        )
    return found


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    proc = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def result(rule, **counts):
    """A rule result kept on time (no backlog, no holds): the report tests' result with those zeroed."""
    return report_result(rule, **{"exempt_hold": 0, "overdue_before": 0, **counts})


@pytest.fixture
def latest_page(tmp_path) -> Path:
    """Real runs of two DAGs, then a dry run of one of them at a future as-of."""
    root = tmp_path / "reports"
    base = {"as_of": "2026-11-26T00:00:00", "dry_run": False, "demo_key": False}
    write_run_report(
        dag_id="lethe_crm_retention",
        root=root,
        run={**base, "run_id": "scheduled__2026-11-26", "rules": ["C1", "K1"], "source": "crm", "armed": True},
        results={
            "C1": result("C1", overdue_before=2, related={"interactions": 12}),
            "K1": result("K1", deleted=0, anonymised=4, eligible=4),
        },
    )
    write_run_report(
        dag_id="lethe_marketing_retention",
        root=root,
        run={**base, "run_id": "scheduled__2026-11-26", "rules": ["N1", "W1", "W2"]},
        results={
            "N1": result("N1"),
            "W1": result("W1", eligible=0, deleted=0),
            "W2": result("W2", eligible=1, deleted=1),
        },
    )
    write_run_report(
        dag_id="lethe_crm_retention",
        root=root,
        run={
            **base,
            "run_id": "manual__what-if",
            "as_of": "2027-12-31T00:00:00",
            "dry_run": True,
            "dry_run_reason": "requested",
            "rules": ["C1", "K1"],
        },
        results={
            "C1": result("C1", eligible=40, deleted=40, remaining_after=40, overdue_before=30),
            "K1": result("K1", eligible=5, deleted=0, anonymised=5, remaining_after=5),
        },
    )
    set_generated_at(root, "lethe_crm_retention", "scheduled__2026-11-26", "2026-11-26T02:00:09+00:00")
    set_generated_at(root, "lethe_marketing_retention", "scheduled__2026-11-26", "2026-11-26T02:00:11+00:00")
    set_generated_at(root, "lethe_crm_retention", "manual__what-if", "2026-11-26T09:12:00+00:00")
    latest = refresh_latest(root)
    assert [r["run_id"] for r in latest["runs"]] == ["scheduled__2026-11-26"] * 2
    assert [r["run_id"] for r in latest["dry_runs"]] == ["manual__what-if"]
    return root / "latest" / "report.html"


class Dom(HTMLParser):
    """What the test reads from the rendered DOM: the verdict's text and where dry-run banners are."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str, set[str]]] = []
        self.verdict: list[str] = []
        self.banners: list[list[str]] = []  # the ids of the sections each banner sits in
        self.sections: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = set((attrs.get("class") or "").split())
        if tag not in VOID:
            self.stack.append((tag, attrs.get("id") or "", classes))
        if "dry-banner" in classes:
            self.banners.append([i for _, i, _ in self.stack if i])
        if tag == "section" and attrs.get("id"):
            self.sections[attrs["id"]] = []

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        ids = [i for _, i, _ in self.stack]
        if "verdict" in ids and any("verdict-text" in c for _, _, c in self.stack):
            self.verdict.append(data)
        for section_id in self.sections:
            if section_id in ids:
                self.sections[section_id].append(data)


def png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Decode an 8-bit, non-interlaced PNG with the standard library: width, height, bytes per
    pixel and the unfiltered rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header, "no IHDR chunk"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0, header
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev, rows = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=False))
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + (((line[i - bpp] if i >= bpp else 0) + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def colours(png: Path) -> tuple[tuple[int, int], set[tuple[int, ...]]]:
    """The image's size and the distinct colours of a sample of its pixels (Pillow if the venv has it)."""
    try:
        from PIL import Image
    except ImportError:
        width, height, bpp, rows = png_pixels(png.read_bytes())
        found = {tuple(row[x * bpp : x * bpp + min(bpp, 3)]) for row in rows[::4] for x in range(0, width, 2)}
        return (width, height), found
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        found = {rgb.getpixel((x, y)) for y in range(0, rgb.height, 4) for x in range(0, rgb.width, 2)}
        return rgb.size, found


def test_latest_report_in_headless_chromium(latest_page, tmp_path):
    proc = run_chromium(tmp_path, "--dump-dom", latest_page.as_uri())
    dom = Dom()
    dom.feed(proc.stdout)
    dom.close()

    assert " ".join("".join(dom.verdict).split()) == EXPECTED_VERDICT
    assert set(dom.sections) == {"real-runs", "dry-runs"}
    assert dom.banners == [["dry-runs"]], "a dry-run banner outside the dry-run section"
    real = " ".join(" ".join(dom.sections["real-runs"]).split())
    dry = " ".join(" ".join(dom.sections["dry-runs"]).split())
    assert "DRY RUN" not in real and "manual__what-if" not in real and "2027-12-31" not in real
    assert "lethe_marketing_retention" in real and "N1" in real and "W2" in real
    assert "Dry runs (nothing was changed)" in dry and "manual__what-if" in dry and "2027-12-31" in dry
    assert "Dry run: nothing was changed; 40 records would be removed and 5 records would be anonymised." in dry
    for repr_mark in ("['", "{'", "None", "True"):
        assert repr_mark not in real + dry, repr_mark

    png = tmp_path / "latest.png"
    run_chromium(tmp_path, f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", latest_page.as_uri())
    assert png.exists() and png.stat().st_size > 0, "no screenshot"
    size, found = colours(png)
    assert size == (WIDTH, HEIGHT)
    assert len(found) >= 8, f"the screenshot is (nearly) blank: {len(found)} colour(s)"
    # The green of the ok verdict is on the page.
    assert any(g > r + 15 and g > b for r, g, b in found), "no green verdict in the screenshot"
