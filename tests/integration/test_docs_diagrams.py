"""The diagrams of docs/architecture.md: graphviz sources in docs/diagrams/,
rendered SVGs in docs/images/ (scripts/render-diagrams.sh). Each SVG must
come from the current source: it records the source's sha256, and what dot
renders from the source now has the same nodes, edges and text. (Layout
coordinates are left out of the comparison: they depend on the fonts a
machine has.)"""

import hashlib
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from harness import REPO_ROOT

DIAGRAMS = sorted((REPO_ROOT / "docs" / "diagrams").glob("*.dot"))
SVG_NS = "{http://www.w3.org/2000/svg}"


def structure(svg_text):
    """(titles of nodes and edges, every text) of a graphviz SVG."""
    root = ET.fromstring(svg_text.encode())
    titles, texts = [], []
    for g in root.iter(f"{SVG_NS}g"):
        cls = g.get("class")
        if cls in ("node", "edge", "cluster"):
            t = g.find(f"{SVG_NS}title")
            titles.append((cls, t.text if t is not None else None))
    for t in root.iter(f"{SVG_NS}text"):
        texts.append(t.text)
    return sorted(titles, key=str), sorted(texts, key=str)


def test_there_are_diagrams():
    names = {p.stem for p in DIAGRAMS}
    assert {"cluster", "pipeline"} <= names, names
    arch = (REPO_ROOT / "docs" / "architecture.md").read_text()
    for n in names:
        assert f"images/{n}.svg" in arch, f"docs/architecture.md does not show {n}.svg"


@pytest.mark.parametrize("src", DIAGRAMS, ids=lambda p: p.stem)
def test_rendered_svg_is_up_to_date(src):
    svg = REPO_ROOT / "docs" / "images" / f"{src.stem}.svg"
    assert svg.is_file(), f"{svg} is missing: run scripts/render-diagrams.sh"
    text = svg.read_text()
    m = re.search(r"<!-- source: docs/diagrams/(\S+)\.dot sha256 ([0-9a-f]{64}) ", text)
    assert m and m.group(1) == src.stem, f"{svg.name} does not name its source"
    assert m.group(2) == hashlib.sha256(src.read_bytes()).hexdigest(), \
        f"{svg.name} is stale: {src.name} changed since; run scripts/render-diagrams.sh"
    dot = shutil.which("dot")
    assert dot, "graphviz is not installed (scripts/deps.sh installs it)"
    fresh = subprocess.run([dot, "-Tsvg", str(src)], capture_output=True, text=True, timeout=60, check=True).stdout
    assert structure(fresh) == structure(text), f"{svg.name} was not rendered from {src.name} as it is"
