// graphql-http's auditServer: the reference suite of the GraphQL-over-HTTP spec. Every
// MUST and SHOULD passes; the MAYs we leave out are named in the README.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { auditServer } from 'graphql-http';
import { API } from './env.js';

test('graphql-http audit: no MUST or SHOULD fails', async () => {
  const results = await auditServer({ url: API });
  const failed = results.filter((r) => r.status !== 'ok');
  const serious = failed.filter((r) => !r.name.startsWith('MAY'));
  for (const r of failed) console.log(`${r.status}: ${r.id} ${r.name}: ${r.reason}`);
  assert.deepEqual(serious.map((r) => `${r.id} ${r.name}: ${r.reason}`), []);
  assert.ok(results.length > 40, `the audit ran ${results.length} checks`);
});
