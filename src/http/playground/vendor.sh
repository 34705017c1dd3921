#!/usr/bin/env bash
# Re-creates the playground's third-party files and records, in SOURCES, what each was built
# from and its SHA-256 (the `vendored_assets_match_their_recorded_sources` test checks the
# committed files against it). GraphiQL 5 ships no browser build, so esbuild bundles it
# with React 19 and Monaco from the versions pinned in build/package-lock.json. The binary
# embeds the output: the playground loads nothing from another host.
#
#   src/http/playground/vendor.sh     # then commit the files and SOURCES
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp build/package.json build/package-lock.json build/entry.js "$work/"
(cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
modules="$work/node_modules"
"$modules/.bin/esbuild" "$work/entry.js" \
  "$modules/monaco-editor/esm/vs/editor/editor.worker.js" \
  "$modules/monaco-editor/esm/vs/language/json/json.worker.js" \
  "$modules/monaco-graphql/esm/graphql.worker.js" \
  --bundle --minify --format=iife --outdir="$work/out" --entry-names='[name]' \
  --loader:.ttf=file --asset-names='[name]' \
  --define:process.env.NODE_ENV='"production"' --legal-comments=none --log-level=warning
mv "$work/out/entry.js" "$work/out/graphiql.js"
mv "$work/out/entry.css" "$work/out/graphiql.css"
version() { node -p "require('$modules/$1/package.json').version"; }
from="graphiql@$(version graphiql) react@$(version react) react-dom@$(version react-dom) \
graphql@$(version graphql) monaco-editor@$(version monaco-editor) \
monaco-graphql@$(version monaco-graphql), bundled by esbuild@$(version esbuild)"
rm -f graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js
{
  echo "# file  sha256: built by vendor.sh from $from"
  for file in graphiql.js graphiql.css codicon.ttf editor.worker.js json.worker.js graphql.worker.js; do
    cp "$work/out/$file" "$file"
    echo "$file  $(sha256sum "$file" | cut -d' ' -f1)"
  done
} > SOURCES
cat SOURCES
