// A real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// a page on an allowed origin calls the API, a page on another origin is refused by the
// browser itself, and the playground works with no network beyond loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import { API, BASE, PAGE_PORT, PASSWORD, tokenFromEmail, unique } from './env.js';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
let browser;
const servers = [];

/** Serves one HTML page on localhost:`port`: another origin than the API's 127.0.0.1. */
function servePage(port) {
  const page = `<!doctype html><meta charset="utf-8"><title>app</title>
<script>
  window.callApi = async (token) => {
    const response = await fetch(${JSON.stringify(API)}, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token },
      body: JSON.stringify({ query: '{ me { email } }' }),
    });
    return response.json();
  };
</script>`;
  const server = createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page);
  });
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

async function post(query, variables) {
  const response = await fetch(API, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

/** Signs up and follows the emailed link; answers the address and the session's token. */
async function signUp() {
  const email = unique('browser');
  await post('mutation($e: String!, $p: String!) { signUp(email: $e, password: $p, name: "Bea") { email } }', {
    e: email,
    p: PASSWORD,
  });
  const link = await tokenFromEmail(email, '/complete-sign-up');
  const body = await post('mutation($t: String!) { completeSignUp(token: $t) { token } }', { t: link });
  return { email, token: body.data.completeSignUp.token };
}

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // Nothing but loopback resolves: the playground must not need the internet.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    ],
  });
});

after(async () => {
  await browser?.close();
  for (const server of servers) server.close();
});

test('a page on an allowed origin calls the API; a page on another origin is refused', async () => {
  const { email, token } = await signUp();
  const allowed = await servePage(PAGE_PORT);
  const other = await servePage(0);
  const page = await browser.newPage();
  // A loopback page, but on a host busy with the rest of the suite.
  page.setDefaultNavigationTimeout(120000);

  await page.goto(`http://localhost:${allowed}/`);
  const answer = await page.evaluate((t) => window.callApi(t), token);
  assert.equal(answer.data.me.email, email);

  const errors = [];
  page.on('console', (message) => errors.push(message.text()));
  await page.goto(`http://localhost:${other}/`);
  // Chromium logs the CORS refusal on its own schedule, not always before the fetch rejects.
  const corsLogged = page
    .waitForEvent('console', { predicate: (m) => m.text().includes('CORS'), timeout: 30000 })
    .then(() => true, () => false);
  const refused = await page.evaluate((t) => window.callApi(t).then(() => 'read', (e) => e.name), token);
  assert.equal(refused, 'TypeError', 'the browser keeps the answer from the page');
  assert.ok(errors.some((e) => e.includes('CORS')) || (await corsLogged), errors.join('\n'));
  await page.close();
});

/** The README's GraphiQL session: its ```graphql blocks, in order. */
async function readmeOperations() {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const session = readme.split('## A session in GraphiQL')[1].split('\n## ')[0];
  return [...session.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => m[1].trim());
}

/** Replaces the query editor's text as a person would: select all, then type. */
async function typeQuery(page, text) {
  await page.click('.graphiql-query-editor .view-lines');
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  // One line in one insertion: Monaco closes a brace itself when Enter follows `{`.
  await page.keyboard.insertText(text.replace(/\s+/g, ' '));
}

async function run(page, expected) {
  await page.click('.graphiql-execute-button');
  await page.waitForFunction(
    (key) => document.querySelector('.graphiql-response .view-lines')?.textContent.includes(key),
    expected,
    { timeout: 30000 },
  );
  return page.evaluate(() => document.querySelector('.graphiql-response .view-lines').textContent);
}

test('the playground works offline: the README session, then the docs', async () => {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const outside = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') return route.continue();
    outside.push(url.href);
    return route.abort();
  });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });

  await page.goto(`${BASE}/graphql`);
  await page.waitForSelector('.graphiql-query-editor .monaco-editor', { timeout: 30000 });

  // Exactly as the README says, with an address of this run's own.
  const email = unique('ada');
  const [signUp, complete, ...rest] = await readmeOperations();
  assert.ok(signUp.includes('signUp(email: "ada@example.com"'), signUp);
  await typeQuery(page, signUp.replace('ada@example.com', email));
  const asked = await run(page, '"email"');
  assert.ok(!asked.includes('"errors"'), asked);
  // The reader pastes the token of the link emailed to them.
  assert.ok(complete.includes('TOKEN_FROM_THE_EMAIL'), complete);
  const link = await tokenFromEmail(email, '/complete-sign-up');
  await typeQuery(page, complete.replace('TOKEN_FROM_THE_EMAIL', link));
  const signedUp = await run(page, '"token"');
  const token = signedUp.match(/"token":\s*"([^"]+)"/)[1];
  assert.ok(!signedUp.includes('"errors"'), signedUp);
  await page.fill('#access-token', token);
  assert.ok(rest.length >= 4, 'the README shows a session');
  for (const operation of rest) {
    await typeQuery(page, operation);
    const answer = await run(page, '"data"');
    assert.ok(!answer.includes('"errors"'), `${operation}\n${answer}`);
  }
  const me = await run(page, '"data"');
  assert.ok(!me.includes('UNAUTHENTICATED'));

  // The docs explorer, built from the standard introspection query.
  await page.click('[aria-label="Show Documentation Explorer"]');
  await page.click('.graphiql-doc-explorer-type-name >> text=Query');
  await page.waitForSelector('.graphiql-doc-explorer-field-name >> text=workspace', { timeout: 20000 });
  await page.click('.graphiql-doc-explorer-field-name >> text=workspace');
  await page.waitForSelector('.graphiql-doc-explorer-title >> text=workspace');

  assert.deepEqual(outside, [], 'nothing is loaded from another host');
  assert.deepEqual(problems, []);
  await context.close();
});

test('the playground subscribes: a change made elsewhere shows as it happens', async () => {
  const { token } = await signUp();
  const me = await fetch(API, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: '{ me { activeWorkspace { id eventsCursor } } }' }),
  }).then((response) => response.json());
  const { id: workspaceId, eventsCursor } = me.data.me.activeWorkspace;

  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(error.message));
  await page.goto(`${BASE}/graphql`);
  await page.waitForSelector('.graphiql-query-editor .monaco-editor', { timeout: 30000 });
  await page.fill('#access-token', token);
  await typeQuery(
    page,
    `subscription { workspaceEvents(workspaceId: "${workspaceId}", after: "${eventsCursor}") { action workspace { name } } }`,
  );
  await page.click('.graphiql-execute-button');
  // From the cursor: the rename arrives however soon it commits after the click.
  // No spaces: the response editor renders them as no-break spaces.
  const name = `Renamed-${Date.now()}`;
  await fetch(API, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: 'mutation($w: ID!, $n: String!) { renameWorkspace(workspaceId: $w, name: $n) { id } }',
      variables: { w: workspaceId, n: name },
    }),
  });
  const seen = await page
    .waitForFunction(
      (key) => document.querySelector('.graphiql-response .view-lines')?.textContent.includes(key),
      name,
      { timeout: 30000 },
    )
    .then(() => true, () => false);
  const shown = await page.evaluate(() => document.querySelector('.graphiql-response .view-lines').textContent);
  assert.ok(seen, shown);
  assert.ok(shown.includes('WORKSPACE_RENAMED'), shown);
  assert.deepEqual(problems, []);
  await context.close();
});
