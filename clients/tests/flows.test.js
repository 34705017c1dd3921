// The product's first minutes, through the two client libraries frontends use, each with
// its default settings: sign up and follow the emailed link, create a workspace, invite
// someone (the token comes from the email the workers send), they accept, and the members
// page shows both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { parse } from 'graphql';
import { Client, cacheExchange, fetchExchange } from '@urql/core';
import { ApolloClient, HttpLink, InMemoryCache } from '@apollo/client';
import { API, PASSWORD, SERVICE_TOKEN, tokenFromEmail, unique } from './env.js';

const source = await readFile(new URL('../operations/app.graphql', import.meta.url), 'utf8');
const operations = Object.fromEntries(
  parse(source).definitions.map((definition) => [
    definition.name.value,
    { kind: 'Document', definitions: [definition] },
  ]),
);

/** urql as its docs set it up; v4+ sends queries as GET by default. */
function urql(token) {
  const client = new Client({
    url: API,
    exchanges: [cacheExchange, fetchExchange],
    fetchOptions: () => (token ? { headers: { authorization: `Bearer ${token}` } } : {}),
  });
  return {
    async query(name, variables) {
      const result = await client.query(operations[name], variables).toPromise();
      if (result.error) throw result.error;
      return result.data;
    },
    async mutate(name, variables) {
      const result = await client.mutation(operations[name], variables).toPromise();
      if (result.error) throw result.error;
      return result.data;
    },
    raw: client,
  };
}

/** Apollo Client as its docs set it up. */
function apollo(token) {
  const client = new ApolloClient({
    link: new HttpLink({
      uri: API,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    }),
    cache: new InMemoryCache(),
  });
  return {
    async query(name, variables) {
      const result = await client.query({ query: operations[name], variables });
      return result.data;
    },
    async mutate(name, variables) {
      const result = await client.mutate({ mutation: operations[name], variables });
      return result.data;
    },
    raw: client,
  };
}

for (const [library, connect] of [['urql', urql], ['Apollo Client', apollo]]) {
  test(`${library}: sign up, create a workspace, invite, accept, list members`, async () => {
    const ownerEmail = unique('owner');
    const { signUp } = await connect().mutate('SignUp', {
      email: ownerEmail,
      password: PASSWORD,
      name: 'Ada',
    });
    assert.equal(signUp.email, ownerEmail);
    assert.equal(signUp.session, null);
    const link = await tokenFromEmail(ownerEmail, '/complete-sign-up');
    const { completeSignUp: owner } = await connect().mutate('CompleteSignUp', { token: link });
    assert.match(owner.token, /\S{20,}/);
    assert.equal(owner.user.activeWorkspace.name, "Ada's Workspace");

    const asOwner = connect(owner.token);
    const { createWorkspace: workspace } = await asOwner.mutate('CreateWorkspace', {
      name: `Client Co (${library})`,
    });
    assert.equal(workspace.viewerRole, 'OWNER');
    assert.equal(workspace.billingStatus, 'TRIALING');

    const inviteeEmail = unique('grace');
    const { inviteMember: invitation } = await asOwner.mutate('InviteMember', {
      workspaceId: workspace.id,
      email: inviteeEmail,
      role: 'ADMIN',
    });
    assert.equal(invitation.status, 'PENDING');
    const token = await tokenFromEmail(inviteeEmail, '/invitations/accept');

    await connect().mutate('SignUp', { email: inviteeEmail, password: PASSWORD, name: 'Grace' });
    const { completeSignUp: invitee } = await connect().mutate('CompleteSignUp', {
      token: await tokenFromEmail(inviteeEmail, '/complete-sign-up'),
    });
    const { acceptInvitation: joined } = await connect(invitee.token).mutate('AcceptInvitation', {
      token,
    });
    assert.equal(joined.id, workspace.id);
    assert.equal(joined.viewerRole, 'ADMIN');

    const { workspace: page } = await asOwner.query('MembersPage', {
      workspaceId: workspace.id,
      first: 10,
    });
    assert.equal(page.members.totalCount, 2);
    assert.equal(page.members.pageInfo.hasNextPage, false);
    const byEmail = Object.fromEntries(page.members.edges.map((e) => [e.node.user.email, e.node]));
    assert.equal(byEmail[ownerEmail].role, 'OWNER');
    assert.equal(byEmail[inviteeEmail].role, 'ADMIN');
    assert.equal(byEmail[inviteeEmail].user.name, 'Grace');
  });
}

test('urql: a field the role may not read is null beside the data the screen needs', async () => {
  const ownerEmail = unique('owner');
  await urql().mutate('SignUp', { email: ownerEmail, password: PASSWORD, name: 'Ada' });
  const { completeSignUp: owner } = await urql().mutate('CompleteSignUp', {
    token: await tokenFromEmail(ownerEmail, '/complete-sign-up'),
  });
  const workspaceId = owner.user.activeWorkspace.id;
  const viewerEmail = unique('viewer');
  await urql(owner.token).mutate('InviteMember', { workspaceId, email: viewerEmail, role: 'VIEWER' });
  const token = await tokenFromEmail(viewerEmail, '/invitations/accept');
  const { signUp: { session: viewer } } = await urql().mutate('SignUp', {
    email: viewerEmail,
    password: PASSWORD,
    name: 'Vi',
    invitationToken: token,
  });
  const result = await urql(viewer.token)
    .raw.query(operations.WorkspaceBilling, { workspaceId })
    .toPromise();
  assert.equal(result.error.graphQLErrors[0].extensions.code, 'FORBIDDEN');
  assert.deepEqual(result.error.graphQLErrors[0].path, ['workspace', 'billing']);
  assert.equal(result.data.workspace.billing, null);
  assert.equal(result.data.workspace.viewerRole, 'VIEWER');
  assert.equal(result.data.workspace.id, workspaceId);
});

test('Apollo Client: request errors arrive coded, without data', async () => {
  const client = apollo().raw;
  await assert.rejects(
    client.query({ query: parse('{ noSuchField }') }),
    (error) => {
      const errors = error.errors ?? error.graphQLErrors ?? error.result?.errors ?? [];
      assert.equal(errors[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED', String(error));
      return true;
    },
  );
});

for (const [library, connect] of [['urql', urql], ['Apollo Client', apollo]]) {
  test(`${library}: a Viewer reads the conversations the runtime wrote, and analytics`, async () => {
    const ownerEmail = unique('owner');
    await connect().mutate('SignUp', { email: ownerEmail, password: PASSWORD, name: 'Ada' });
    const { completeSignUp: owner } = await connect().mutate('CompleteSignUp', {
      token: await tokenFromEmail(ownerEmail, '/complete-sign-up'),
    });
    const workspaceId = owner.user.activeWorkspace.id;
    const asOwner = connect(owner.token);
    const { createAgent: agent } = await asOwner.mutate('CreateAgent', { workspaceId, name: 'Reception' });
    const viewerEmail = unique('viewer');
    await asOwner.mutate('InviteMember', { workspaceId, email: viewerEmail, role: 'VIEWER' });
    const { signUp: { session: viewer } } = await connect().mutate('SignUp', {
      email: viewerEmail,
      password: PASSWORD,
      name: 'Vi',
      invitationToken: await tokenFromEmail(viewerEmail, '/invitations/accept'),
    });

    // The runtime, with its service token, through the same library.
    const runtime = connect(SERVICE_TOKEN);
    const { startConversation: conversation } = await runtime.mutate('StartConversation', {
      workspaceId,
      input: { externalId: 'call-1', agentId: agent.id, channel: 'SMS', contact: { phone: '+14155550123', name: 'Grace' } },
    });
    const now = new Date();
    const at = (minutes) => new Date(now.getTime() - minutes * 60_000).toISOString();
    const { appendMessages } = await runtime.mutate('AppendMessages', {
      workspaceId,
      conversationId: conversation.id,
      messages: [
        { externalId: 'm1', direction: 'INBOUND', text: 'Can I move my booking to Friday?', sentAt: at(3) },
        { externalId: 'm2', direction: 'OUTBOUND', text: 'Friday at 7 works. Done!', sentAt: at(2) },
      ],
    });
    assert.equal(appendMessages.conversation.messageCount, 2);

    const asViewer = connect(viewer.token);
    const { workspace } = await asViewer.query('ConversationsPage', {
      workspaceId,
      first: 10,
      filter: { search: 'bookings' },
    });
    assert.equal(workspace.viewerRole, 'VIEWER');
    assert.equal(workspace.conversations.totalCount, 1);
    const node = workspace.conversations.edges[0].node;
    assert.equal(node.agent.name, 'Reception');
    assert.equal(node.contact.phone, '+14155550123');
    assert.match(node.snippet, /<b>booking<\/b>/);
    assert.deepEqual(node.messages.edges.map((e) => e.node.direction), ['INBOUND', 'OUTBOUND']);

    const { workspace: stats } = await asViewer.query('Analytics', {
      workspaceId,
      since: new Date(now.getTime() - 86_400_000).toISOString(),
      until: new Date(now.getTime() + 3_600_000).toISOString(),
      interval: 'DAY',
    });
    assert.equal(stats.analytics.timeZone, 'UTC');
    assert.deepEqual(stats.analytics.totals, {
      ...stats.analytics.totals,
      conversationsStarted: 1,
      messagesIn: 1,
      messagesOut: 1,
      uniqueContacts: 1,
    });
    assert.equal(stats.analytics.firstResponseMedianSeconds, 60);
    assert.equal(stats.analytics.usage.messages, 1);
  });
}
