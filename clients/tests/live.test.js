// Live updates (issue 25) as frontends subscribe: the `graphql-ws` library's client under
// Apollo Client's GraphQLWsLink (normalized cache) and urql's subscription exchange. One
// person changes the workspace; the other's screen shows it without a refetch. Removal
// ends the stream; a client that comes back with its last cursor gets what it missed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { parse, print } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { ApolloClient, HttpLink, InMemoryCache, ApolloLink, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from '@urql/core';
import { API, PASSWORD, SERVICE_TOKEN, tokenFromEmail, unique } from './env.js';

const source = await readFile(new URL('../operations/app.graphql', import.meta.url), 'utf8');
const operations = Object.fromEntries(
  parse(source).definitions.map((definition) => [
    definition.name.value,
    { kind: 'Document', definitions: [definition] },
  ]),
);
const WS = API.replace(/^http/, 'ws');

/** graphql-ws as its docs set it up on Node (no global WebSocket on Node 20). */
function socket(token) {
  return createClient({
    url: WS,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
}

async function http(token, name, variables) {
  const response = await fetch(API, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query: source, operationName: name, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

/** An Owner with a workspace, and an Admin who joined it by invitation. */
async function team() {
  const ownerEmail = unique('owner');
  await http(null, 'SignUp', { email: ownerEmail, password: PASSWORD, name: 'Ada' });
  const { completeSignUp: owner } = await http(null, 'CompleteSignUp', {
    token: await tokenFromEmail(ownerEmail, '/complete-sign-up'),
  });
  const workspaceId = owner.user.activeWorkspace.id;
  const adminEmail = unique('admin');
  await http(owner.token, 'InviteMember', { workspaceId, email: adminEmail, role: 'ADMIN' });
  const { signUp: { session: admin } } = await http(null, 'SignUp', {
    email: adminEmail,
    password: PASSWORD,
    name: 'Grace',
    invitationToken: await tokenFromEmail(adminEmail, '/invitations/accept'),
  });
  return { owner, admin, workspaceId };
}

/** Resolves with the first `count` results of an observable-like `subscribe`. */
function take(subscribe, count) {
  return new Promise((resolve, reject) => {
    const seen = [];
    const timer = setTimeout(() => reject(new Error(`only ${seen.length} of ${count} events`)), 10_000);
    const subscription = subscribe({
      next(value) {
        seen.push(value);
        if (seen.length === count) {
          clearTimeout(timer);
          resolve(seen);
        }
      },
      error(error) {
        clearTimeout(timer);
        reject(error);
      },
      complete() {},
    });
    return subscription;
  });
}

/** Apollo Client with its documented split: subscriptions over the socket, the rest over HTTP. */
function apollo(ws, token) {
  return new ApolloClient({
    link: ApolloLink.split(
      ({ query }) => query.definitions.some((d) => d.kind === 'OperationDefinition' && d.operation === 'subscription'),
      new GraphQLWsLink(ws),
      new HttpLink({ uri: API, headers: { authorization: `Bearer ${token}` } }),
    ),
    cache: new InMemoryCache(),
  });
}

/** Where the workspace's stream is now: subscribing after it misses nothing. */
async function eventsCursor(token, workspaceId) {
  const { workspace } = await http(token, 'WorkspaceLive', { workspaceId });
  return workspace.eventsCursor;
}

test('Apollo Client: an event updates the normalized cache without a refetch, a conversation\'s messages too', async () => {
  const { owner, admin, workspaceId } = await team();
  const ws = socket(owner.token);
  const client = apollo(ws, owner.token);
  // The stream's place first, then the screen's data: no change falls between the two.
  const after = await eventsCursor(owner.token, workspaceId);
  const { data } = await client.query({ query: operations.WorkspaceLive, variables: { workspaceId } });
  assert.equal(data.workspace.name, "Ada's Workspace");

  const events = take(
    (observer) =>
      client
        .subscribe({ query: operations.WorkspaceEvents, variables: { workspaceId, after } })
        .subscribe(observer),
    1,
  );
  await http(admin.token, 'RenameWorkspace', { workspaceId, name: 'Renamed by Grace' });
  const [event] = await events;
  assert.equal(event.data.workspaceEvents.action, 'WORKSPACE_RENAMED');

  // The page's cached query shows the new name: no request was sent for it.
  const cached = client.readQuery({ query: operations.WorkspaceLive, variables: { workspaceId } });
  assert.equal(cached.workspace.name, 'Renamed by Grace');
  const fragment = client.readFragment({
    id: client.cache.identify({ __typename: 'Workspace', id: workspaceId }),
    fragment: gql`fragment Named on Workspace { name }`,
  });
  assert.equal(fragment.name, 'Renamed by Grace');

  // The agent runtime's messages reach a conversations page the same way.
  const { createAgent: agent } = await http(owner.token, 'CreateAgent', { workspaceId, name: 'Reception' });
  const { startConversation: conversation } = await http(SERVICE_TOKEN, 'StartConversation', {
    workspaceId,
    input: { externalId: 'chat-1', agentId: agent.id, channel: 'WEB_CHAT', contact: { email: unique('guest') } },
  });
  const from = await eventsCursor(owner.token, workspaceId);
  const page = { query: operations.ConversationsPage, variables: { workspaceId, first: 10 } };
  const { data: before } = await client.query(page);
  assert.equal(before.workspace.conversations.edges[0].node.messageCount, 0);
  const added = take(
    (observer) =>
      client
        .subscribe({ query: operations.WorkspaceEvents, variables: { workspaceId, after: from } })
        .subscribe(observer),
    2,
  );
  const sentAt = new Date().toISOString();
  await http(SERVICE_TOKEN, 'AppendMessages', {
    workspaceId,
    conversationId: conversation.id,
    messages: [
      { externalId: 'm1', direction: 'INBOUND', text: 'Is the terrace open tonight?', sentAt },
      { externalId: 'm2', direction: 'OUTBOUND', text: 'It is, from six.', sentAt },
    ],
  });
  // The service's first counted write of the day (for the audit log's readers), then the
  // messages, with the conversation as it is now.
  const [accessed, messages] = await added;
  assert.equal(accessed.data.workspaceEvents.action, 'SERVICE_ACCESSED');
  assert.equal(messages.data.workspaceEvents.action, 'CONVERSATION_MESSAGES_ADDED');
  assert.equal(messages.data.workspaceEvents.target.id, conversation.id);
  const node = client.readQuery(page).workspace.conversations.edges[0].node;
  assert.equal(node.messageCount, 2);
  assert.equal(new Date(node.lastActivityAt).getTime(), new Date(sentAt).getTime());
  await ws.dispose();
});

test('urql: removal ends the stream, and a cursor replays what a client missed', async () => {
  const { owner, admin, workspaceId } = await team();
  const urql = (token, ws) =>
    new Client({
      url: API,
      exchanges: [
        cacheExchange,
        fetchExchange,
        subscriptionExchange({
          forwardSubscription(request) {
            const input = { ...request, query: request.query || '' };
            return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(input, sink) }) };
          },
        }),
      ],
      fetchOptions: { headers: { authorization: `Bearer ${token}` } },
    });

  // The Admin watches; the Owner renames once.
  const from = await eventsCursor(owner.token, workspaceId);
  const adminSocket = socket(admin.token);
  const asAdmin = urql(admin.token, adminSocket);
  let firstSeen;
  const started = new Promise((resolve) => { firstSeen = resolve; });
  const ended = new Promise((resolve, reject) => {
    const seen = [];
    setTimeout(() => reject(new Error(`the stream did not end: ${JSON.stringify(seen)}`)), 20_000);
    asAdmin.subscription(operations.WorkspaceEvents, { workspaceId, after: from }).subscribe((result) => {
      seen.push(result);
      firstSeen();
      if (result.error) resolve(seen);
    });
  });
  const ownerSocket = socket(owner.token);
  const first = take(
    (observer) =>
      ownerSocket.subscribe({ query: print(operations.WorkspaceEvents), variables: { workspaceId, after: from } }, observer),
    1,
  );
  await http(owner.token, 'RenameWorkspace', { workspaceId, name: 'First' });
  const [{ data: { workspaceEvents: seenFirst } }] = await first;
  await ownerSocket.dispose();

  // Away: two changes. Back with the last cursor: both, in order.
  await http(owner.token, 'CreateAgent', { workspaceId, name: 'While away' });
  await http(owner.token, 'RenameWorkspace', { workspaceId, name: 'Second' });
  const back = socket(owner.token);
  const missed = await take(
    (observer) => back.subscribe(
      { query: print(operations.WorkspaceEvents), variables: { workspaceId, after: seenFirst.cursor } },
      observer,
    ),
    2,
  );
  assert.deepEqual(missed.map((r) => r.data.workspaceEvents.action), ['RESOURCE_CREATED', 'WORKSPACE_RENAMED']);
  assert.equal(missed[1].data.workspaceEvents.workspace.name, 'Second');
  await back.dispose();

  // The Admin is removed (once their stream has delivered): it ends with NOT_FOUND.
  await started;
  await http(owner.token, 'RemoveMember', { workspaceId, userId: admin.user.id });
  const results = await ended;
  // urql keeps the last data on a result that carries an error: count events only.
  const names = results.filter((r) => !r.error).map((r) => r.data.workspaceEvents.action);
  assert.deepEqual(names, ['WORKSPACE_RENAMED', 'RESOURCE_CREATED', 'WORKSPACE_RENAMED']);
  assert.equal(results.at(-1).error.graphQLErrors[0].extensions.code, 'NOT_FOUND');
  await adminSocket.dispose();
});


test('graphql-ws: a role change reaches the person\'s cache, and signing out closes the socket', async () => {
  const { owner, admin, workspaceId } = await team();
  let closedWith;
  const closed = new Promise((resolve) => { closedWith = resolve; });
  const ws = createClient({
    url: WS,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${admin.token}` },
    retryAttempts: 0,
    on: { closed: (event) => closedWith(event) },
  });
  const client = apollo(ws, admin.token);
  const { data } = await client.query({ query: operations.WorkspaceLive, variables: { workspaceId } });
  assert.equal(data.workspace.viewerRole, 'ADMIN');

  // The subscription reads the Admin's access when it starts (nothing tells a client when
  // that is done): wait for the socket, then ample time, before the Owner changes it.
  let acknowledged;
  const ready = new Promise((resolve) => { acknowledged = resolve; });
  ws.on('connected', () => acknowledged());
  const events = take((observer) => client.subscribe({ query: operations.ViewerEvents }).subscribe(observer), 1);
  await ready;
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await http(owner.token, 'ChangeMemberRole', { workspaceId, userId: admin.user.id, role: 'MEMBER' });
  const [event] = await events;
  assert.equal(event.data.viewerEvents.kind, 'ROLE_CHANGED');
  const cached = client.readQuery({ query: operations.WorkspaceLive, variables: { workspaceId } });
  assert.equal(cached.workspace.viewerRole, 'MEMBER');

  // Signing out over HTTP ends the session: its socket closes with 4403 at once.
  await http(admin.token, 'SignOut', {});
  const closeEvent = await Promise.race([
    closed,
    new Promise((_, reject) => setTimeout(() => reject(new Error('the socket stayed open')), 5_000)),
  ]);
  assert.equal(closeEvent.code, 4403);
  await ws.dispose();
});
