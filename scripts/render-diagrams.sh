#!/usr/bin/env bash
# Renders docs/diagrams/*.dot (graphviz) into docs/images/*.svg. Each SVG
# records the sha256 of its source, so a test can tell a stale one.
#
#   scripts/render-diagrams.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v dot >/dev/null || {
  echo "render-diagrams.sh: dot is not installed (graphviz)" >&2
  exit 1
}
mkdir -p "${ROOT}/docs/images"
for src in "${ROOT}"/docs/diagrams/*.dot; do
  name=$(basename "${src}" .dot)
  out="${ROOT}/docs/images/${name}.svg"
  sum=$(sha256sum "${src}" | cut -d' ' -f1)
  # The XML declaration must stay first; the source line goes right after.
  dot -Tsvg "${src}" |
    sed "1a <!-- source: docs/diagrams/${name}.dot sha256 ${sum} (scripts/render-diagrams.sh) -->" \
      >"${out}.tmp"
  mv "${out}.tmp" "${out}"
  echo "render-diagrams.sh: wrote docs/images/${name}.svg"
done
