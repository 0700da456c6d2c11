#!/usr/bin/env bash
# Debian packages WeasyPrint needs: Pango for layout, HarfBuzz subsetting for fast,
# small PDFs (without libharfbuzz-subset0 rendering is ~2.5x slower), DejaVu fonts.
# Installed when missing and we are root; otherwise one line saying what to run.
set -u
packages=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
    || echo "warning: could not install ${missing[*]}; run: apt-get install ${missing[*]}"
else
  echo "warning: missing Debian packages ${missing[*]}; run: sudo apt-get install ${missing[*]}"
fi
