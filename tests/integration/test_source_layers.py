"""The layer rule of docs/architecture.md, checked on the source: a module
includes only its own folder and lower layers.

    base < obs < http, db, redis < middleware, services < routes < app

Folders on one level are siblings and do not include each other: services
know nothing of HTTP (only middleware and routes see it), and http, db and
redis are independent libraries."""

import re

from harness import REPO_ROOT

RANK = {"base": 0, "obs": 1, "http": 2, "db": 2, "redis": 2, "middleware": 3, "services": 3,
        "routes": 4, "app": 5}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)


def test_every_folder_includes_only_its_own_and_lower_layers():
    src = REPO_ROOT / "src"
    folders = sorted(p.name for p in src.iterdir() if p.is_dir())
    assert set(folders) == set(RANK), f"src/ folders {folders} and the layer table disagree"
    bad = []
    for f in sorted(src.rglob("*.[ch]")):
        here = f.relative_to(src).parts[0]
        for inc in INCLUDE.findall(f.read_text()):
            if inc != here and RANK[inc] >= RANK[here]:
                bad.append(f"src/{f.relative_to(src)} includes {inc}/ ({here} may not)")
    assert not bad, "\n".join(bad)
