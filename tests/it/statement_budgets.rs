//! Every mutation in the contract has a budget of SQL statements, counted by the server
//! (`extensions.sqlStatements`) on a real run through the whole product: sign-up to billing.
//! A mutation added without a budget fails `every_mutation_has_a_budget`.
//!
//! The budgets are today's counts: a change that adds a statement to a mutation must raise
//! its budget here, in review, on purpose.

use std::collections::BTreeMap;

use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use crate::harness::{Gql, TestApp, PASSWORD};

/// Statements per mutation, at most, counting the work (`extensions.sqlStatements`): each
/// write runs in a transaction (`BEGIN` and `COMMIT`). Setting a checked-out connection's
/// row-level-security context is counted apart (`sqlContextStatements`): it depends on what
/// the pooled connection did before, at most one statement per checkout.
const BUDGETS: &[(&str, u64)] = &[
    // The throttles (src/throttle.rs) cost one upsert per per-address rule; signIn also
    // reads its email's failure count and clears it on success.
    // Records the request and its job, the same for a taken address (account_emails.rs).
    ("signUp", 5),
    // Takes the request; the account, its workspace and Owner membership, and a session
    // with its security event and its network.
    ("completeSignUp", 13),
    ("resendVerificationEmail", 9),
    // The revocation and its security event commit together: BEGIN, both, COMMIT (the
    // same for every token change below).
    ("signOut", 5),
    // Made with the session (authenticating it is one), and revoking earlier tokens another;
    // the account is locked before its link.
    ("verifyEmail", 10),
    // The session, its security event and its network (remembered: issue 27), in a
    // transaction; before the hash, whether the network is the account's own and, as it
    // is not here, the attempt counted against the account's hourly ceiling.
    ("signIn", 12),
    // Reads whether the address is proven; counts the hour's tokens.
    ("createAccessToken", 7),
    ("revokeAccessToken", 5),
    ("revokeSession", 5),
    ("revokeOtherSessions", 5),
    // The new session remembers its network (issue 27), as every new session does.
    ("changePassword", 15),
    ("deleteAccount", 20),
    ("changeEmail", 14),
    // Locks the account before its link (every link use does, so credential changes run
    // one after another), ends every other session and token and voids the pending links
    // (issue 27); made here from the session it keeps, whose authentication is one.
    ("confirmEmailChange", 12),
    ("requestPasswordReset", 7),
    // Locks the account before its link and voids the pending links (issue 27).
    ("resetPassword", 10),
    // Reads the owned workspaces and counts the day's new ones.
    ("createWorkspace", 9),
    // One statement before it had an event; with it, a transaction: BEGIN, the rename (its
    // old name read under the lock the update takes), the event, COMMIT.
    ("renameWorkspace", 6),
    ("switchWorkspace", 3),
    // As renameWorkspace (the update reads the old values under its lock; the event), and
    // a new time zone is checked against PostgreSQL's own list first.
    ("updateWorkspaceSettings", 7),
    ("deleteWorkspace", 10),
    // The owner's role, the caller's owned workspaces (the cap), the restore, its audit
    // event and the billing job.
    ("restoreWorkspace", 10),
    // The guard's membership; then, in one transaction, entering the workspace, the day's
    // counts of exports (the workspace's and the Owner's), the export, its audit event and
    // its job.
    ("exportWorkspace", 10),
    // Every resource write appends its audit event: one statement.
    ("createAgent", 9),
    ("updateAgent", 7),
    ("deleteAgent", 7),
    ("createContact", 7),
    ("updateContact", 7),
    ("deleteContact", 7),
    ("createKnowledgeBase", 7),
    ("updateKnowledgeBase", 7),
    ("deleteKnowledgeBase", 8),
    ("createForm", 7),
    ("updateForm", 7),
    ("deleteForm", 7),
    // Queues the billing sync that sets the numbers' quantity on the subscription.
    ("createPhoneNumber", 10),
    ("updatePhoneNumber", 7),
    ("deletePhoneNumber", 9),
    ("createCalendar", 7),
    ("updateCalendar", 7),
    ("deleteCalendar", 7),
    ("createIntegration", 7),
    ("updateIntegration", 7),
    ("deleteIntegration", 7),
    // The inviter's day count across workspaces is one upsert; each invitation change
    // appends its audit event.
    ("inviteMember", 17),
    ("resendInvitation", 17),
    ("revokeInvitation", 11),
    ("acceptInvitation", 16),
    ("declineInvitation", 9),
    // Each member change appends its audit event: one statement.
    ("changeMemberRole", 11),
    ("removeMember", 11),
    ("transferOwnership", 13),
    // Finds the workspace through the caller's membership, as every workspace field does,
    // so a token scoped elsewhere cannot leave it (issue 27).
    ("leaveWorkspace", 10),
    // Whether a service reported today (one indexed read), and the day's first report's
    // SERVICE_ACCESSED event. Authenticating the service token is one: tokens live in the
    // database, so a revoked one fails on its next request (issue 23).
    ("reportUsage", 10),
    // The agent runtime's writes (src/conversations/): the workspace, the runtime's id, the
    // agent, the address's lock and the contact found or made, the conversation; its
    // agent and contact for the answer. Each write adds to the analytics rollups in one
    // upsert, whatever the hours it spans.
    ("startConversation", 11),
    // The token, the workspace with its limits and billing period, and the append (one
    // statement whatever its size: 100 messages here; `append_messages`, migration 000061),
    // each its own transaction and none to set a context. The day's first counted append,
    // or one crossing an alert threshold, takes a transaction instead
    // (conversations::an_append_is_three_statements_and_alerts_still_go_out_once).
    ("appendMessages", 3),
    ("closeConversation", 7),
    ("deleteConversation", 6),
    // The customer, made on first use: no transaction or lock around Stripe's call; it is
    // recorded, then read back (a concurrent first call may have recorded another).
    ("createSetupIntent", 7),
    // Mirrors the cards it changed: drops removed ones, upserts the rest (one statement).
    // The mirror and the audit event commit together: BEGIN, the two writes, the event,
    // COMMIT.
    ("setDefaultPaymentMethod", 10),
    // Reads what the phone numbers' item needs, in one statement.
    // The billing operation: written before Stripe is called (one upsert), settled in the
    // transaction that mirrors the result (issue 26); the mirror weighs its write against
    // the state it holds, read under the account's lock (one statement, as every mirror).
    ("selectPlan", 17),
    // The mirror weighs its write against the state it holds (issue 26): one read.
    ("cancelSubscription", 12),
    ("resumeSubscription", 12),
    // The customer, the account, the Owner's address; stores what Stripe accepted; answers.
    ("updateBillingDetails", 12),
    // A card that is not the default: the customer, the cards mirrored after, the billing.
    ("removePaymentMethod", 10),
];

fn budgets() -> BTreeMap<&'static str, u64> {
    BUDGETS.iter().copied().collect()
}

#[test]
fn every_mutation_has_a_budget() {
    let sdl = linkai::graphql::sdl();
    let mutations = crate::schema::mutations(&sdl);
    let names: Vec<&str> = mutations.iter().map(|(name, _)| name.as_str()).collect();
    let budgeted: Vec<&str> = budgets().keys().copied().collect();
    let mut names = names;
    names.sort_unstable();
    assert_eq!(names, budgeted);
}

/// Runs mutations, keeping the statement count of each and the audit events it wrote.
struct Counted<'a> {
    app: &'a TestApp,
    counts: BTreeMap<String, u64>,
    events: BTreeMap<String, Vec<String>>,
    seen: std::collections::BTreeSet<String>,
}

impl Counted<'_> {
    async fn run(&mut self, field: &str, token: Option<&str>, query: &str, vars: Value) -> Value {
        // What the setup between runs wrote is not this mutation's.
        self.new_events().await;
        let res: Gql = self.app.gql(token, query, vars).await;
        let data = res.data(field).clone();
        self.counts.insert(field.to_owned(), res.sql_statements());
        let written = self.new_events().await;
        self.events.insert(field.to_owned(), written);
        data
    }

    /// The audit and security events requests wrote since the last call, by their schema
    /// names (`security:` before the account's). What the workers wrote meanwhile (Stripe's
    /// and the system's) is not a request's.
    async fn new_events(&mut self) -> Vec<String> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            id: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            action: String,
            #[diesel(sql_type = diesel::sql_types::Bool)]
            security: bool,
        }
        let mut conn = self.app.db.conn().await;
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT id::text AS id, action, false AS security FROM audit_events \
             WHERE actor_kind IN ('user', 'access_token', 'service') \
             UNION ALL SELECT id::text, action, true FROM security_events",
        )
        .load(&mut conn)
        .await
        .expect("events");
        rows.into_iter()
            .filter(|row| self.seen.insert(row.id.clone()))
            .map(|row| {
                if row.security {
                    let action =
                        linkai::auth::security::Action::from_db(&row.action).expect("an action");
                    let name = async_graphql::InputType::to_value(
                        &linkai::auth::graphql::SecurityAction::from(action),
                    );
                    return format!("security:{name}");
                }
                let action = linkai::audit::Action::from_db(&row.action).expect("an action");
                let name = async_graphql::InputType::to_value(
                    &linkai::audit::graphql::AuditAction::from(action),
                );
                name.to_string()
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutation_stays_within_its_statement_budget() {
    let app = TestApp::builder()
        .with_workers()
        .with_stripe()
        .start()
        .await;
    let mut run = Counted {
        app: &app,
        counts: BTreeMap::new(),
        events: BTreeMap::new(),
        seen: Default::default(),
    };
    let email = format!("ada-{}@example.com", uuid::Uuid::new_v4().simple());

    // Accounts.
    run.run(
        "signUp",
        None,
        "mutation($e: String!, $p: String!) { signUp(email: $e, password: $p, name: \"Ada\") { email } }",
        json!({ "e": email, "p": PASSWORD }),
    )
    .await;
    let link = app.mail.wait_for(&email, "complete-sign-up", 1).await[0].token();
    let signed_up = run
        .run(
            "completeSignUp",
            None,
            "mutation($t: String!) { completeSignUp(token: $t) { token user { id activeWorkspace { id } } } }",
            json!({ "t": link }),
        )
        .await;
    let ws = signed_up["user"]["activeWorkspace"]["id"]
        .as_str()
        .expect("workspace")
        .to_owned();
    let token = signed_up["token"].as_str().expect("token").to_owned();
    // Verification is for accounts from before sign-ups were confirmed: make this one such.
    let ada = crate::harness::Actor {
        email: email.clone(),
        token: token.clone(),
        id: signed_up["user"]["id"].as_str().expect("id").to_owned(),
        own_workspace: ws.clone(),
    };
    app.unprove_email(&ada).await;
    run.run(
        "resendVerificationEmail",
        Some(&token),
        "mutation { resendVerificationEmail }",
        json!({}),
    )
    .await;
    let verify = app.mail.wait_for(&email, "verify-email", 1).await[0].token();
    run.run(
        "verifyEmail",
        Some(&token),
        "mutation($t: String!) { verifyEmail(token: $t) { id emailVerified } }",
        json!({ "t": verify }),
    )
    .await;
    let signed_in = run
        .run(
            "signIn",
            None,
            "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
            json!({ "e": email, "p": PASSWORD }),
        )
        .await;
    let ada = signed_in["token"].as_str().expect("token").to_owned();
    let ada = Some(ada.as_str());
    // The sign-up's session signs out; the sign-in's goes on.
    run.run("signOut", Some(&token), "mutation { signOut }", json!({}))
        .await;
    let pat = run
        .run(
            "createAccessToken",
            ada,
            "mutation { createAccessToken(name: \"CI\") { id token } }",
            json!({}),
        )
        .await;
    run.run(
        "revokeAccessToken",
        ada,
        "mutation($id: ID!) { revokeAccessToken(id: $id) }",
        json!({ "id": pat["id"] }),
    )
    .await;
    // A second session, ended by id from the first; then every other one at once.
    let spare = app
        .gql(
            None,
            "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
            json!({ "e": email, "p": PASSWORD }),
        )
        .await
        .data("signIn")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let spare_id = app
        .gql(
            Some(&spare),
            "{ sessions { edges { node { id current } } } }",
            json!({}),
        )
        .await
        .data("sessions")["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|edge| edge["node"]["current"] == true)
        .expect("the current session is listed")["node"]["id"]
        .clone();
    run.run(
        "revokeSession",
        ada,
        "mutation($id: ID!) { revokeSession(id: $id) }",
        json!({ "id": spare_id }),
    )
    .await;
    run.run(
        "revokeOtherSessions",
        ada,
        "mutation { revokeOtherSessions }",
        json!({}),
    )
    .await;
    // Signs every session out; the reset below and a new sign-in follow.
    run.run(
        "changePassword",
        ada,
        "mutation($c: String!) { changePassword(currentPassword: $c, newPassword: \"another good password\") { token } }",
        json!({ "c": PASSWORD }),
    )
    .await;
    run.run(
        "requestPasswordReset",
        None,
        "mutation($e: String!) { requestPasswordReset(email: $e) }",
        json!({ "e": email }),
    )
    .await;
    let reset = app.mail.wait_for(&email, "reset-password", 1).await[0].token();
    run.run(
        "resetPassword",
        None,
        "mutation($t: String!, $p: String!) { resetPassword(token: $t, password: $p) }",
        json!({ "t": reset, "p": PASSWORD }),
    )
    .await;
    let signed_in = app
        .gql(
            None,
            "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }",
            json!({ "e": email, "p": PASSWORD }),
        )
        .await;
    let ada = signed_in.data("signIn")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let ada = Some(ada.as_str());

    // Workspaces.
    let second = run
        .run(
            "createWorkspace",
            ada,
            "mutation { createWorkspace(name: \"Second\") { id name } }",
            json!({}),
        )
        .await["id"]
        .clone();
    run.run(
        "renameWorkspace",
        ada,
        "mutation($ws: ID!) { renameWorkspace(workspaceId: $ws, name: \"Renamed\") { id name } }",
        json!({ "ws": second }),
    )
    .await;
    run.run(
        "switchWorkspace",
        ada,
        "mutation($ws: ID!) { switchWorkspace(workspaceId: $ws) { id } }",
        json!({ "ws": ws }),
    )
    .await;
    run.run(
        "deleteWorkspace",
        ada,
        "mutation($ws: ID!) { deleteWorkspace(workspaceId: $ws) }",
        json!({ "ws": second }),
    )
    .await;
    run.run(
        "exportWorkspace",
        ada,
        "mutation($ws: ID!) { exportWorkspace(workspaceId: $ws) }",
        json!({ "ws": ws }),
    )
    .await;
    run.run(
        "restoreWorkspace",
        ada,
        "mutation($ws: ID!) { restoreWorkspace(workspaceId: $ws) { id } }",
        json!({ "ws": second }),
    )
    .await;

    // Resources: create, update, delete of every kind.
    for (kind, input) in crate::role_matrix::KINDS {
        let created = run
            .run(
                &format!("create{kind}"),
                ada,
                &format!("mutation($ws: ID!) {{ create{kind}(workspaceId: $ws, input: {input}) {{ id name createdBy {{ name }} }} }}"),
                json!({ "ws": ws }),
            )
            .await;
        run.run(
            &format!("update{kind}"),
            ada,
            &format!("mutation($ws: ID!, $id: ID!) {{ update{kind}(workspaceId: $ws, id: $id, input: {input}) {{ id name updatedAt }} }}"),
            json!({ "ws": ws, "id": created["id"] }),
        )
        .await;
        run.run(
            &format!("delete{kind}"),
            ada,
            &format!("mutation($ws: ID!, $id: ID!) {{ delete{kind}(workspaceId: $ws, id: $id) }}"),
            json!({ "ws": ws, "id": created["id"] }),
        )
        .await;
    }
    run.run(
        "updateWorkspaceSettings",
        ada,
        "mutation($ws: ID!) { updateWorkspaceSettings(workspaceId: $ws, input: { timeZone: \"Europe/Paris\", conversationRetentionDays: 90 }) { timeZone } }",
        json!({ "ws": ws }),
    )
    .await;
    run.run(
        "reportUsage",
        Some(crate::usage::SERVICE_TOKEN),
        "mutation($ws: ID!) { reportUsage(workspaceId: $ws, metric: MESSAGES, quantity: 3, idempotencyKey: \"budget-1\") { messages } }",
        json!({ "ws": ws }),
    )
    .await;
    conversations(&mut run, ada, &ws).await;

    // Billing, against the Stripe fake.
    run.run(
        "createSetupIntent",
        ada,
        "mutation($ws: ID!) { createSetupIntent(workspaceId: $ws) { clientSecret } }",
        json!({ "ws": ws }),
    )
    .await;
    let card = crate::billing::add_card(&crate::billing::customer_of(&app, &ws).await).await;
    run.run(
        "setDefaultPaymentMethod",
        ada,
        "mutation($ws: ID!, $pm: String!) { setDefaultPaymentMethod(workspaceId: $ws, paymentMethodId: $pm) { status } }",
        json!({ "ws": ws, "pm": card }),
    )
    .await;
    for (field, args) in [
        ("selectPlan", ", plan: GROWTH"),
        ("cancelSubscription", ""),
        ("resumeSubscription", ""),
    ] {
        run.run(
            field,
            ada,
            &if field == "selectPlan" {
                format!("mutation($ws: ID!) {{ {field}(workspaceId: $ws{args}) {{ billing {{ status plan {{ id }} }} }} }}")
            } else {
                format!("mutation($ws: ID!) {{ {field}(workspaceId: $ws{args}) {{ status plan {{ id }} }} }}")
            },
            json!({ "ws": ws }),
        )
        .await;
    }

    let spare = crate::billing::add_card(&crate::billing::customer_of(&app, &ws).await).await;
    run.run(
        "removePaymentMethod",
        ada,
        "mutation($ws: ID!, $pm: String!) { removePaymentMethod(workspaceId: $ws, paymentMethodId: $pm) { status } }",
        json!({ "ws": ws, "pm": spare }),
    )
    .await;
    run.run(
        "updateBillingDetails",
        ada,
        "mutation($ws: ID!) { updateBillingDetails(workspaceId: $ws, details: { email: \"invoices@acme.test\", companyName: \"Acme\" }) { status } }",
        json!({ "ws": ws }),
    )
    .await;

    // Members and invitations.
    let bob = app.sign_up("Bob").await;
    let carol = app.sign_up("Carol").await;
    let eve = app.sign_up("Eve").await;
    let invite = "mutation($ws: ID!, $e: String!) { inviteMember(workspaceId: $ws, email: $e, role: MEMBER) { id status } }";
    let to_bob = run
        .run(
            "inviteMember",
            ada,
            invite,
            json!({ "ws": ws, "e": bob.email }),
        )
        .await;
    // A resend supersedes a delivery not yet sent (its job is skipped): let the first go out.
    app.mail.wait_for(&bob.email, "invitations/accept", 1).await;
    run.run(
        "resendInvitation",
        ada,
        "mutation($ws: ID!, $id: ID!) { resendInvitation(workspaceId: $ws, invitationId: $id) { id status } }",
        json!({ "ws": ws, "id": to_bob["id"] }),
    )
    .await;
    let bob_link = app.mail.wait_for(&bob.email, "invitations/accept", 2).await;
    run.run(
        "acceptInvitation",
        bob.token(),
        "mutation($t: String!) { acceptInvitation(token: $t) { id viewerRole } }",
        json!({ "t": bob_link.last().expect("latest link").token() }),
    )
    .await;
    app.gql(ada, invite, json!({ "ws": ws, "e": carol.email }))
        .await
        .data("inviteMember");
    let carol_link = app
        .mail
        .wait_for(&carol.email, "invitations/accept", 1)
        .await[0]
        .token();
    run.run(
        "declineInvitation",
        carol.token(),
        "mutation($t: String!) { declineInvitation(token: $t) }",
        json!({ "t": carol_link }),
    )
    .await;
    let to_eve = app
        .gql(ada, invite, json!({ "ws": ws, "e": eve.email }))
        .await
        .data("inviteMember")
        .clone();
    run.run(
        "revokeInvitation",
        ada,
        "mutation($ws: ID!, $id: ID!) { revokeInvitation(workspaceId: $ws, invitationId: $id) { id status } }",
        json!({ "ws": ws, "id": to_eve["id"] }),
    )
    .await;
    run.run(
        "changeMemberRole",
        ada,
        "mutation($ws: ID!, $u: ID!) { changeMemberRole(workspaceId: $ws, userId: $u, role: ADMIN) { role } }",
        json!({ "ws": ws, "u": bob.id }),
    )
    .await;
    app.add_member(&ws, &eve, "viewer").await;
    run.run(
        "removeMember",
        ada,
        "mutation($ws: ID!, $u: ID!) { removeMember(workspaceId: $ws, userId: $u) }",
        json!({ "ws": ws, "u": eve.id }),
    )
    .await;
    run.run(
        "transferOwnership",
        ada,
        "mutation($ws: ID!, $u: ID!) { transferOwnership(workspaceId: $ws, userId: $u) { id viewerRole } }",
        json!({ "ws": ws, "u": bob.id }),
    )
    .await;
    run.run(
        "leaveWorkspace",
        ada,
        "mutation($ws: ID!) { leaveWorkspace(workspaceId: $ws) }",
        json!({ "ws": ws }),
    )
    .await;
    // Ada moves to another address, confirmed from there in the session she is signed in
    // with (which the move keeps; every other one ends).
    let moved = format!("moved-{email}");
    run.run(
        "changeEmail",
        ada,
        "mutation($e: String!, $p: String!) { changeEmail(newEmail: $e, password: $p) }",
        json!({ "e": moved, "p": PASSWORD }),
    )
    .await;
    let link = app.mail.wait_for(&moved, "confirm-email-change", 1).await[0].token();
    run.run(
        "confirmEmailChange",
        ada,
        "mutation($t: String!) { confirmEmailChange(token: $t) { email } }",
        json!({ "t": link }),
    )
    .await;
    // Ada, now in her own workspace only, deletes her account with it.
    run.run(
        "deleteAccount",
        ada,
        "mutation($p: String!) { deleteAccount(password: $p) }",
        json!({ "p": PASSWORD }),
    )
    .await;

    let budgets = budgets();
    let over: Vec<String> = run
        .counts
        .iter()
        .filter(|(field, count)| **count > budgets[field.as_str()])
        .map(|(field, count)| format!("{field}: {count} > {}", budgets[field.as_str()]))
        .collect();
    assert!(
        over.is_empty(),
        "over budget: {over:?}\nall: {:?}",
        run.counts
    );
    let unmeasured: Vec<&&str> = budgets
        .keys()
        .filter(|field| !run.counts.contains_key(**field))
        .collect();
    assert!(unmeasured.is_empty(), "not run: {unmeasured:?}");

    // Issue 17: each mutation writes only events its docs/security.md rows name (at least one unless
    // a row says it may write none), to the audit log and to the security log.
    let audit = crate::audit::documented();
    let security = crate::audit::documented_security();
    let fits =
        |rows: &BTreeMap<String, crate::audit::Documented>, field: &str, wrote: &[String]| {
            match rows.get(field) {
                Some(doc) => {
                    wrote.iter().all(|e| doc.events.contains(e))
                        && (doc.may_write_none || !wrote.is_empty())
                }
                None => wrote.is_empty(),
            }
        };
    let wrong: Vec<String> = run
        .events
        .iter()
        .filter(|(field, written)| {
            let to_security: Vec<String> = written
                .iter()
                .filter_map(|e| e.strip_prefix("security:").map(str::to_owned))
                .collect();
            let to_audit: Vec<String> = written
                .iter()
                .filter(|e| !e.starts_with("security:"))
                .cloned()
                .collect();
            !(fits(&audit, field, &to_audit) && fits(&security, field, &to_security))
        })
        .map(|(field, written)| {
            format!(
                "{field} wrote {written:?}, documented {:?} and {:?}",
                audit.get(field),
                security.get(field)
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The agent runtime's conversation writes, and deleting one.
async fn conversations(run: &mut Counted<'_>, owner: Option<&str>, ws: &str) {
    let service = Some(crate::usage::SERVICE_TOKEN);
    let agent = run
        .app
        .gql(
            owner,
            "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Budget bot\" }) { id } }",
            json!({ "ws": ws }),
        )
        .await
        .data("createAgent")["id"]
        .clone();
    let started = run
        .run(
            "startConversation",
            service,
            "mutation($ws: ID!, $agent: ID!) { startConversation(workspaceId: $ws, input: {
               externalId: \"budget-chat\", agentId: $agent, channel: SMS,
               contact: { phone: \"+14155550142\" } }) { id agent { name } contact { name } } }",
            json!({ "ws": ws, "agent": agent }),
        )
        .await;
    let id = started["id"].clone();
    // A whole batch: its cost does not grow with its size.
    let batch: Vec<Value> = (0..100)
        .map(|n| {
            json!({ "externalId": format!("m{n}"), "direction": if n % 2 == 0 { "INBOUND" } else { "OUTBOUND" },
                    "text": "Budgeted words", "sentAt": format!("2026-12-01T10:{:02}:00Z", n % 60) })
        })
        .collect();
    run.run(
        "appendMessages",
        service,
        "mutation($ws: ID!, $c: ID!, $m: [MessageInput!]!) { appendMessages(workspaceId: $ws, conversationId: $c, messages: $m) { conversation { messageCount } messages { id } } }",
        json!({ "ws": ws, "c": id, "m": batch }),
    )
    .await;
    run.run(
        "closeConversation",
        service,
        "mutation($ws: ID!, $c: ID!) { closeConversation(workspaceId: $ws, conversationId: $c) { status } }",
        json!({ "ws": ws, "c": id }),
    )
    .await;
    run.run(
        "deleteConversation",
        owner,
        "mutation($ws: ID!, $c: ID!) { deleteConversation(workspaceId: $ws, id: $c) }",
        json!({ "ws": ws, "c": id }),
    )
    .await;
}
