// graphql-http's auditServer: the reference suite of the GraphQL-over-HTTP spec. Every
// audit passes, the MAYs included (the README says so).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { auditServer } from 'graphql-http';
import { API } from './env.js';

test('graphql-http audit: every MUST, SHOULD and MAY passes', async () => {
  const results = await auditServer({ url: API });
  const failed = results
    .filter((r) => r.status !== 'ok')
    .map((r) => `${r.status}: ${r.id} ${r.name}: ${r.reason}`);
  assert.deepEqual(failed, []);
  const must = results.filter((r) => r.name.startsWith('MUST')).length;
  assert.ok(must >= 10 && results.length > 40, `the audit ran ${results.length} checks, ${must} MUSTs`);
});
