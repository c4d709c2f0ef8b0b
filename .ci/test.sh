#!/usr/bin/env bash
# The test command (README "Quick start", line 2): installs everything the suite needs on a fresh machine,
# then runs it. Safe to rerun: each install step is skipped when its tool is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# LibreOffice renders the workbooks to PDF/PNG; poppler's pdftoppm turns pages into pictures; a JDK runs Spark.
need=()
command -v soffice >/dev/null || need+=(libreoffice-calc)
command -v pdftoppm >/dev/null || need+=(poppler-utils)
command -v java >/dev/null || need+=(default-jre-headless)
fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
# Carlito: Calibri's metric twin, so LibreOffice lays text out as Excel does (the rendering tests measure with it).
fc-list 2>/dev/null | grep -qi carlito || need+=(fonts-crosextra-carlito)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt_install "${need[@]}"
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test,spark,serve]"

python3 -m pytest -q -p no:cacheprovider "$@"
