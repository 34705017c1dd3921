// Does `schema.graphql` keep working for a client built against the last release? Diffs it
// against the newest snapshot in `releases/` with graphql-inspector, and fails on:
// - a breaking change (a field, argument, type or enum value removed or changed in a way a
//   client's query or generated types trip on), unless the release had marked the removed
//   field or value `@deprecated` (graphql-inspector's suppressRemovalOfDeprecatedField);
// - an enum value added that the CHANGELOG's "## Unreleased" section does not name as
//   `Enum.VALUE`: a client's exhaustive switch meets it, so it is announced first.
//
// Usage: node schema-check.mjs [RELEASED CURRENT CHANGELOG] (defaults: the newest
// releases/*.graphql, ../schema.graphql, ../CHANGELOG.md). Run by .ci/run; its own test is in
// tests/it/schema.rs.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSchema } from 'graphql';
import { diff, DiffRule, CriticalityLevel, ChangeType } from '@graphql-inspector/core';

const here = dirname(fileURLToPath(import.meta.url));
const newest = () => {
  const releases = readdirSync(join(here, 'releases')).filter((f) => f.endsWith('.graphql')).sort();
  if (releases.length === 0) throw new Error('no release in clients/releases/');
  return join(here, 'releases', releases[releases.length - 1]);
};
const [released = newest(), current = join(here, '..', 'schema.graphql'), changelog = join(here, '..', 'CHANGELOG.md')] =
  process.argv.slice(2);

/** The text of the CHANGELOG's "## Unreleased" section. */
function unreleased(text) {
  const start = text.search(/^## Unreleased\s*$/m);
  if (start < 0) return '';
  const rest = text.slice(start).split('\n').slice(1).join('\n');
  const end = rest.search(/^## /m);
  return end < 0 ? rest : rest.slice(0, end);
}

const load = (path) => buildSchema(readFileSync(path, 'utf8'));
const changes = await diff(load(released), load(current), [DiffRule.suppressRemovalOfDeprecatedField]);
const announced = unreleased(readFileSync(changelog, 'utf8'));
const problems = [];
for (const change of changes) {
  if (change.criticality.level === CriticalityLevel.Breaking) {
    problems.push(`breaking: ${change.message} (${change.path})`);
  } else if (change.type === ChangeType.EnumValueAdded && !announced.includes(`\`${change.path}\``)) {
    problems.push(`unannounced: ${change.message}: name \`${change.path}\` under "## Unreleased" in CHANGELOG.md`);
  }
}
const dangerous = changes.filter((c) => c.criticality.level === CriticalityLevel.Dangerous).length;
if (problems.length > 0) {
  console.error(`schema.graphql against ${released}:\n${problems.map((p) => `- ${p}`).join('\n')}`);
  console.error('Deprecate first (`@deprecated(reason: …)`), release, then remove; announce new enum values.');
  process.exit(1);
}
console.log(`schema.graphql keeps clients of ${released} working: ${changes.length} changes, ${dangerous} announced or deprecated first, none breaking.`);
