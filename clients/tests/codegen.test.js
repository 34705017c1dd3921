// What a frontend author does first: point graphql-codegen at the running API (it reads the
// schema by the standard introspection query), type the operations the app sends, and
// compile the app with `tsc --strict`. Nullability is part of the check: a field that may
// be refused or fail is typed nullable, so code that forgets the null does not compile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generate } from '@graphql-codegen/cli';
import { API } from './env.js';

const run = promisify(execFile);
const here = new URL('..', import.meta.url).pathname;

async function tsc(dir, files) {
  const bin = join(here, 'node_modules/.bin/tsc');
  const args = [
    '--strict', '--noEmit', '--skipLibCheck',
    '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext',
    '--typeRoots', join(here, 'node_modules/@types'),
    ...files.map((f) => join(dir, f)),
  ];
  try {
    await run(bin, args, { cwd: here });
    return '';
  } catch (error) {
    return `${error.stdout}${error.stderr}`;
  }
}

test('graphql-codegen reads the schema from the URL and tsc --strict accepts the app', async () => {
  // Inside clients/, so the generated code resolves its imports from node_modules.
  await mkdir(join(here, '.codegen'), { recursive: true });
  const dir = await mkdtemp(join(here, '.codegen', 'run-'));
  try {
    await generate(
      {
        schema: API,
        documents: [join(here, 'operations/*.graphql')],
        generates: { [`${dir}/gql/`]: { preset: 'client', config: { enumsAsTypes: true } } },
        silent: true,
      },
      true,
    );
    await writeFile(
      join(dir, 'app.ts'),
      `import type { MembersPageQuery, WorkspaceBillingQuery, Role, ConversationsPageQuery, AnalyticsQuery } from './gql/graphql.js';
export function conversationLines(data: ConversationsPageQuery): string[] {
  return (data.workspace?.conversations.edges ?? []).map(
    (edge) => (edge.node.contact?.name ?? 'deleted contact') + ': ' + edge.node.messageCount + ' ' + edge.node.channel,
  );
}
export function firstResponse(data: AnalyticsQuery): string {
  const seconds: number | null | undefined = data.workspace?.analytics.firstResponseMedianSeconds;
  return seconds == null ? 'no replies yet' : Math.round(seconds) + ' s';
}
export function memberLines(data: MembersPageQuery): string[] {
  const workspace = data.workspace;
  if (!workspace) return [];
  return workspace.members.edges.map((edge) => edge.node.user.name + ' (' + edge.node.role + ')');
}
export function billingBadge(data: WorkspaceBillingQuery): string {
  const role: Role | undefined = data.workspace?.viewerRole;
  return data.workspace?.billing?.status ?? ('hidden for ' + role);
}
`,
    );
    assert.equal(await tsc(dir, ['app.ts']), '');

    // Forgetting that a refused field is null does not compile.
    await writeFile(
      join(dir, 'careless.ts'),
      `import type { WorkspaceBillingQuery } from './gql/graphql.js';
export const status = (data: WorkspaceBillingQuery): string => data.workspace!.billing.status;
`,
    );
    const errors = await tsc(dir, ['careless.ts']);
    assert.match(errors, /possibly 'null'|possibly 'undefined'/, errors);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
