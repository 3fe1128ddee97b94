#!/bin/sh
# Add GenWatermark to the desktop's application menu (for this user only; no root needed).
# Run it from the unpacked folder: ./install-desktop-entry.sh   (remove: ./install-desktop-entry.sh --remove)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
entry="$apps/gwm-desktop.desktop"
if [ "${1:-}" = "--remove" ]; then
  rm -f "$entry" && echo "removed $entry"
  exit 0
fi
mkdir -p "$apps"
cat > "$entry" <<ENTRY
[Desktop Entry]
Type=Application
Name=GenWatermark
Comment=Protect your art with an invisible watermark and scan images for it
Exec="$here/gwm-desktop"
Icon=$here/_internal/icons/gwm-desktop.png
Terminal=false
Categories=Graphics;
StartupWMClass=gwm-desktop
ENTRY
echo "added $entry"
