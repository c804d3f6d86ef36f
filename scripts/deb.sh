#!/usr/bin/env bash
# Builds the Debian package with debhelper, without root and without
# touching the tree: `make deb` calls this.
#
#   scripts/deb.sh        -> build/deb/api_<VERSION>_<arch>.deb (and .changes,
#                            .buildinfo, the -dbgsym package)
#
# dpkg-buildpackage writes into debian/ and puts its results in the parent
# directory, so it runs in a copy of the tree, build/deb/src (the files git
# tracks or would track, or, in a tarball, everything but build outputs).
# Objects of the release build already in build/ are copied along with their
# times, so make rebuilds only what is out of date there.
#
# debian/changelog is written here from VERSION (the version) and the
# CHANGELOG.md section of that version (its date): VERSION stays the single
# source. API_COMMIT (from the Makefile) is passed on, since the copy has no
# .git.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="${ROOT}/build/deb"
STAGE="${OUT}/src"

die() {
  echo "deb.sh: $*" >&2
  exit 1
}

for tool in dpkg-buildpackage dh fakeroot; do
  command -v "${tool}" >/dev/null || die "${tool} is missing (run scripts/deps.sh)"
done

version=$(tr -d '[:space:]' <"${ROOT}/VERSION")
[[ ${version} =~ ^[0-9]+\.[0-9]+\.[0-9]+([~+][0-9A-Za-z.~+]+)?$ ]] ||
  die "VERSION holds \"${version}\", not a version like 1.2.3"
# "## [1.2.3] - 2026-12-04"
date=$(sed -n "s/^## \[${version//./\\.}\] - \([0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}\)[[:space:]]*$/\1/p" \
  "${ROOT}/CHANGELOG.md" | head -n 1)
[[ -n ${date} ]] ||
  die "CHANGELOG.md has no section \"## [${version}] - YYYY-MM-DD\"; add one before packaging"
maintainer=$(sed -n 's/^Maintainer: //p' "${ROOT}/debian/control")
[[ -n ${maintainer} ]] || die "debian/control has no Maintainer"

rm -rf "${OUT}"
mkdir -p "${STAGE}"

# The sources: what git tracks plus new files it does not ignore (so a build
# of uncommitted work packages that work), or, without git, the whole tree.
cd "${ROOT}"
if [[ -e .git ]] && command -v git >/dev/null; then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e ${f} ]] && printf '%s\0' "${f}"; done |
    tar -c --null -T - -f - | tar -x -C "${STAGE}" -f -
else
  tar -c --exclude=./build --exclude=./.data --exclude='./tools/*/node_modules' -f - . |
    tar -x -C "${STAGE}" -f -
fi
if [[ -d build/obj ]]; then
  mkdir -p "${STAGE}/build"
  cp -a build/obj "${STAGE}/build/"
  [[ -d build/gen ]] && cp -a build/gen "${STAGE}/build/"
  [[ -f build/api ]] && cp -a build/api "${STAGE}/build/"
fi

{
  printf 'api (%s) bookworm; urgency=medium\n\n' "${version}"
  printf '  * Release %s; see CHANGELOG.md in /usr/share/doc/api/.\n\n' "${version}"
  printf ' -- %s  %s\n' "${maintainer}" "$(date -u -R -d "${date}")"
} >"${STAGE}/debian/changelog"

cd "${STAGE}"
log="${OUT}/build.log"
# -b: binary packages only; -nc: the copy is fresh (a pre-clean would also
# delete the copied objects); -us -uc: unsigned (sign releases elsewhere).
if ! API_COMMIT="${API_COMMIT:-}" dpkg-buildpackage -b -nc -us -uc -rfakeroot >"${log}" 2>&1; then
  tail -n 40 "${log}" >&2
  die "dpkg-buildpackage failed (full log: ${log})"
fi
cd "${ROOT}"
rm -rf "${STAGE}"

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="${OUT}/api_${version}_${arch}.deb"
[[ -f ${deb} ]] || die "dpkg-buildpackage did not produce ${deb}"
echo "${deb#"${ROOT}"/}"
