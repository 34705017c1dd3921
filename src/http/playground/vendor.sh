#!/usr/bin/env bash
# Re-creates the playground's third-party assets from the npm registry, pinned by version,
# and records where each came from and its SHA-256 in SOURCES (the `vendored_assets_match`
# test checks the committed files against it). The binary embeds these files: the
# playground loads nothing from another host.
#
#   src/http/playground/vendor.sh     # then commit the files and SOURCES
set -euo pipefail
cd "$(dirname "$0")"
# package@version  path-in-package  file-name-here
assets=(
  "graphiql@4.1.2 graphiql.min.js graphiql.min.js"
  "graphiql@4.1.2 graphiql.min.css graphiql.min.css"
  "react@18.3.1 umd/react.production.min.js react.production.min.js"
  "react-dom@18.3.1 umd/react-dom.production.min.js react-dom.production.min.js"
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
  echo "# file  sha256  source (npm package@version/path); written by vendor.sh"
  for asset in "${assets[@]}"; do
    read -r package path file <<<"$asset"
    dir="$work/${package//[@\/]/_}"
    if [ ! -d "$dir" ]; then
      mkdir -p "$dir"
      tarball=$(cd "$dir" && npm pack --silent "$package")
      tar -xzf "$dir/$tarball" -C "$dir"
    fi
    # The source-map comment names a file we do not ship.
    sed -e '/^\/\/# sourceMappingURL=/d' -e 's|/\*# sourceMappingURL=[^*]*\*/||' "$dir/package/$path" > "$file"
    echo "$file  $(sha256sum "$file" | cut -d' ' -f1)  $package/$path"
  done
} > SOURCES
cat SOURCES
