#!/usr/bin/env bash
# install-exporter.sh VENV REQUIREMENTS: pip-install the OpenVINO exporter's own packages with
# --no-deps into VENV/exporter (a folder, not a venv: the export subprocess puts it first on
# PYTHONPATH, the venv supplies the rest). Skipped when the requirement file is unchanged.
set -euo pipefail
venv=$1 req=$2
target="$venv/exporter"
stamp="$target/.installed"
digest=$(sha256sum "$req" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$digest" ]]; then
  exit 0
fi
echo "Installing the OpenVINO exporter ($req) into $target"
rm -rf "$target"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --target "$target" -r "$req"
echo "$digest" > "$stamp"
