//! Billing per workspace against the local Stripe fake over HTTP.

use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use crate::harness::{stripe_fake, Actor, TestApp, STRIPE_KEY};

const BILLING: &str = "query($ws: ID!) { workspace(id: $ws) { billingStatus readOnly billing {
  status plan { id name } trialEndsAt currentPeriodEnd cancelAtPeriodEnd
  paymentMethods { id brand last4 expMonth expYear isDefault }
  invoices { totalCount edges { node { id status amountDueCents currency } } } } } }";

async fn gql_data(app: &TestApp, actor: &Actor, query: &str, vars: Value, field: &str) -> Value {
    app.gql(actor.token(), query, vars)
        .await
        .data(field)
        .clone()
}

pub async fn customer_of(app: &TestApp, workspace: &str) -> String {
    #[derive(diesel::QueryableByName)]
    struct Customer {
        #[diesel(sql_type = diesel::sql_types::Text)]
        stripe_customer_id: String,
    }
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "SELECT stripe_customer_id FROM billing_accounts WHERE workspace_id = '{workspace}'"
    ))
    .get_result::<Customer>(&mut conn)
    .await
    .expect("a customer")
    .stripe_customer_id
}

/// What Stripe Elements does in the browser: confirm the setup intent with a card, which
/// attaches the card to the customer.
pub async fn add_card(customer: &str) -> String {
    add_test_card(customer, "4242424242424242").await
}

/// [`add_card`] with one of Stripe's test card numbers.
pub async fn add_test_card(customer: &str, number: &str) -> String {
    add_card_expiring(customer, number, 12, 2031).await
}

/// [`add_test_card`] expiring at the end of `month`/`year`.
pub async fn add_card_expiring(customer: &str, number: &str, month: u32, year: i32) -> String {
    let (month, year) = (month.to_string(), year.to_string());
    let url = stripe_fake().await;
    let client = reqwest::Client::new();
    let card: Value = client
        .post(format!("{url}/v1/payment_methods"))
        .basic_auth(STRIPE_KEY, Some(""))
        .form(&[
            ("type", "card"),
            ("card[number]", number),
            ("card[exp_month]", &month),
            ("card[exp_year]", &year),
            ("card[cvc]", "123"),
        ])
        .send()
        .await
        .expect("card")
        .json()
        .await
        .expect("json");
    let id = card["id"].as_str().expect("id").to_owned();
    client
        .post(format!("{url}/v1/payment_methods/{id}/attach"))
        .basic_auth(STRIPE_KEY, Some(""))
        .form(&[("customer", customer)])
        .send()
        .await
        .expect("attach");
    id
}

/// Ends `workspace`'s trial a day ago, without a plan.
pub async fn lapse_trial(app: &TestApp, workspace: &str) {
    diesel::sql_query(format!(
        "UPDATE workspaces SET trial_ends_at = now() - interval '1 day' WHERE id = '{workspace}'"
    ))
    .execute(&mut app.db.conn().await)
    .await
    .expect("lapsed");
}

pub async fn stripe_get(path: &str) -> Value {
    let url = stripe_fake().await;
    reqwest::Client::new()
        .get(format!("{url}/v1/{path}"))
        .basic_auth(STRIPE_KEY, Some(""))
        .send()
        .await
        .expect("stripe")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stripe_plans_and_trials_work_and_billing_mutations_say_so() {
    let app = TestApp::new().await;
    let team = app.team().await;
    let plans = app
        .gql(
            None,
            "{ plans { id name monthlyPriceCents limits { messages sms agents phoneNumbers } } }",
            json!({}),
        )
        .await;
    let plans = plans.data("plans");
    assert_eq!(plans.as_array().expect("plans").len(), 3);
    assert_eq!(
        plans[1],
        json!({ "id": "GROWTH", "name": "Growth", "monthlyPriceCents": 14900, "limits": { "messages": 10000, "sms": 2500, "agents": 10, "phoneNumbers": 5 } })
    );
    let billing = gql_data(
        &app,
        &team.admin,
        BILLING,
        json!({ "ws": team.workspace }),
        "workspace",
    )
    .await;
    assert_eq!(billing["billing"]["status"], "TRIALING");
    assert_eq!(billing["billing"]["paymentMethods"], json!([]));
    app.gql(
        team.member.token(),
        BILLING,
        json!({ "ws": team.workspace }),
    )
    .await
    .assert_code("FORBIDDEN");
    for mutation in [
        "mutation($ws: ID!) { createSetupIntent(workspaceId: $ws) { clientSecret } }",
        "mutation($ws: ID!) { selectPlan(workspaceId: $ws, plan: GROWTH) { billing { status } } }",
        "mutation($ws: ID!) { cancelSubscription(workspaceId: $ws) { status } }",
    ] {
        app.gql(
            team.owner.token(),
            mutation,
            json!({ "ws": team.workspace }),
        )
        .await
        .assert_code("BILLING_NOT_CONFIGURED");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_chosen_during_the_trial_keeps_the_trial_then_changes_cancels_and_resumes() {
    let app = TestApp::builder().with_stripe().start().await;
    let team = app.team().await;
    let ws = json!({ "ws": team.workspace });
    let intent = gql_data(
        &app,
        &team.admin,
        "mutation($ws: ID!) { createSetupIntent(workspaceId: $ws) { clientSecret } }",
        ws.clone(),
        "createSetupIntent",
    )
    .await;
    assert!(intent["clientSecret"]
        .as_str()
        .expect("secret")
        .contains("_secret_"));
    let customer = customer_of(&app, &team.workspace).await;
    let stripe_customer = stripe_get(&format!("customers/{customer}")).await;
    assert_eq!(
        stripe_customer["metadata"]["workspace_id"],
        team.workspace.as_str()
    );
    assert_eq!(stripe_customer["email"], team.owner.email.as_str());

    let select = "mutation($ws: ID!, $plan: PlanId!) { selectPlan(workspaceId: $ws, plan: $plan) { billing { status plan { id } trialEndsAt cancelAtPeriodEnd } } }";
    app.gql(
        team.admin.token(),
        select,
        json!({ "ws": team.workspace, "plan": "GROWTH" }),
    )
    .await
    .assert_code("BAD_USER_INPUT");

    let card = add_card(&customer).await;
    let set_default = "mutation($ws: ID!, $pm: String!) { setDefaultPaymentMethod(workspaceId: $ws, paymentMethodId: $pm) { paymentMethods { id brand last4 isDefault } } }";
    let methods = gql_data(
        &app,
        &team.admin,
        set_default,
        json!({ "ws": team.workspace, "pm": card }),
        "setDefaultPaymentMethod",
    )
    .await;
    assert_eq!(
        methods["paymentMethods"],
        json!([{ "id": card, "brand": "visa", "last4": "4242", "isDefault": true }])
    );

    let chosen = gql_data(
        &app,
        &team.admin,
        select,
        json!({ "ws": team.workspace, "plan": "GROWTH" }),
        "selectPlan",
    )
    .await["billing"]
        .clone();
    assert_eq!(chosen["status"], "TRIALING");
    assert_eq!(chosen["plan"]["id"], "GROWTH");
    let subscriptions = stripe_get(&format!("subscriptions?customer={customer}")).await;
    let subscription = &subscriptions["data"][0];
    let trial_end =
        chrono::DateTime::parse_from_rfc3339(chosen["trialEndsAt"].as_str().expect("date"))
            .expect("rfc3339");
    assert_eq!(
        subscription["trial_end"].as_i64(),
        Some(trial_end.timestamp()),
        "the remaining trial is kept"
    );
    assert_eq!(subscription["items"]["data"][0]["plan"]["amount"], 14900);

    let changed = gql_data(
        &app,
        &team.owner,
        select,
        json!({ "ws": team.workspace, "plan": "SCALE" }),
        "selectPlan",
    )
    .await["billing"]
        .clone();
    assert_eq!(changed["plan"]["id"], "SCALE");
    let subscriptions = stripe_get(&format!("subscriptions?customer={customer}")).await;
    assert_eq!(
        subscriptions["data"].as_array().expect("list").len(),
        1,
        "the same subscription, changed"
    );
    assert_eq!(
        subscriptions["data"][0]["items"]["data"][0]["plan"]["amount"],
        49900
    );

    let cancel = gql_data(
        &app,
        &team.admin,
        "mutation($ws: ID!) { cancelSubscription(workspaceId: $ws) { cancelAtPeriodEnd } }",
        ws.clone(),
        "cancelSubscription",
    )
    .await;
    assert_eq!(cancel["cancelAtPeriodEnd"], true);
    let resume = gql_data(
        &app,
        &team.admin,
        "mutation($ws: ID!) { resumeSubscription(workspaceId: $ws) { cancelAtPeriodEnd } }",
        ws.clone(),
        "resumeSubscription",
    )
    .await;
    assert_eq!(resume["cancelAtPeriodEnd"], false);

    for denied in [&team.member, &team.viewer] {
        app.gql(
            denied.token(),
            select,
            json!({ "ws": team.workspace, "plan": "STARTER" }),
        )
        .await
        .assert_code("FORBIDDEN");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choosing_a_plan_after_the_trial_bills_at_once_and_lifts_read_only() {
    let app = TestApp::builder().with_stripe().start().await;
    let ada = app.sign_up("Ada").await;
    lapse_trial(&app, &ada.own_workspace).await;
    let create_agent =
        "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Bot\" }) { id } }";
    app.gql(
        ada.token(),
        create_agent,
        json!({ "ws": ada.own_workspace }),
    )
    .await
    .assert_code("TRIAL_EXPIRED");

    app.gql(
        ada.token(),
        "mutation($ws: ID!) { createSetupIntent(workspaceId: $ws) { clientSecret } }",
        json!({ "ws": ada.own_workspace }),
    )
    .await
    .data("createSetupIntent");
    let customer = customer_of(&app, &ada.own_workspace).await;
    let card = add_card(&customer).await;
    app.gql(ada.token(), "mutation($ws: ID!, $pm: String!) { setDefaultPaymentMethod(workspaceId: $ws, paymentMethodId: $pm) { status } }", json!({ "ws": ada.own_workspace, "pm": card }))
        .await
        .data("setDefaultPaymentMethod");
    let chosen = app
        .gql(
            ada.token(),
            "mutation($ws: ID!) { selectPlan(workspaceId: $ws, plan: STARTER) { billing { status } requiresAction { clientSecret } declined { code } } }",
            json!({ "ws": ada.own_workspace }),
        )
        .await;
    assert_eq!(
        chosen.data("selectPlan"),
        &json!({ "billing": { "status": "ACTIVE" }, "requiresAction": null, "declined": null })
    );

    let billing = gql_data(
        &app,
        &ada,
        BILLING,
        json!({ "ws": ada.own_workspace }),
        "workspace",
    )
    .await;
    assert_eq!(billing["readOnly"], false);
    let invoices = &billing["billing"]["invoices"];
    assert_eq!(invoices["totalCount"], 1);
    assert_eq!(invoices["edges"][0]["node"]["amountDueCents"], 4900);
    let status = invoices["edges"][0]["node"]["status"]
        .as_str()
        .expect("status");
    assert!(["DRAFT", "OPEN", "PAID"].contains(&status), "{status}");
    assert!(billing["billing"]["currentPeriodEnd"].is_string());
    app.gql(
        ada.token(),
        create_agent,
        json!({ "ws": ada.own_workspace }),
    )
    .await
    .data("createAgent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_of_another_workspace_and_parallel_first_calls_are_handled() {
    let app = TestApp::builder().with_stripe().start().await;
    let ada = app.sign_up("Ada").await;
    let bob = app.sign_up("Bob").await;
    let intent = "mutation($ws: ID!) { createSetupIntent(workspaceId: $ws) { clientSecret } }";
    let calls = (0..5).map(|_| app.gql(ada.token(), intent, json!({ "ws": ada.own_workspace })));
    for res in futures::future::join_all(calls).await {
        res.data("createSetupIntent");
    }
    app.gql(bob.token(), intent, json!({ "ws": bob.own_workspace }))
        .await
        .data("createSetupIntent");
    let ada_customer = customer_of(&app, &ada.own_workspace).await;
    // The fake is shared by every test: page through all its customers.
    let mut for_ada = 0;
    let mut after = String::new();
    loop {
        let page = stripe_get(&format!("customers?limit=100{after}")).await;
        let customers = page["data"].as_array().expect("list");
        for_ada += customers
            .iter()
            .filter(|c| c["metadata"]["workspace_id"] == ada.own_workspace.as_str())
            .count();
        match customers.last() {
            Some(last) if page["has_more"] == true => {
                after = format!("&starting_after={}", last["id"].as_str().expect("id"));
            }
            _ => break,
        }
    }
    assert_eq!(for_ada, 1, "one customer per workspace");
    let bob_card = add_card(&customer_of(&app, &bob.own_workspace).await).await;
    let set_default = "mutation($ws: ID!, $pm: String!) { setDefaultPaymentMethod(workspaceId: $ws, paymentMethodId: $pm) { status } }";
    app.gql(
        ada.token(),
        set_default,
        json!({ "ws": ada.own_workspace, "pm": bob_card }),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    assert!(!ada_customer.is_empty());
}

/// Gives `actor`'s workspace a customer and a default card, as the frontend would (Stripe
/// Elements confirming a setup intent); answers the customer.
pub async fn with_card(app: &TestApp, actor: &Actor, workspace: &str) -> String {
    let ws = json!({ "ws": workspace });
    app.gql(
        actor.token(),
        "mutation($ws: ID!) { createSetupIntent(workspaceId: $ws) { clientSecret } }",
        ws,
    )
    .await
    .data("createSetupIntent");
    let customer = customer_of(app, workspace).await;
    let card = add_card(&customer).await;
    app.gql(actor.token(), "mutation($ws: ID!, $pm: String!) { setDefaultPaymentMethod(workspaceId: $ws, paymentMethodId: $pm) { status } }", json!({ "ws": workspace, "pm": card }))
        .await
        .data("setDefaultPaymentMethod");
    customer
}

/// Gives `actor`'s workspace a card and the plan, as the frontend would.
pub async fn subscribe(app: &TestApp, actor: &Actor, workspace: &str, plan: &str) -> String {
    let customer = with_card(app, actor, workspace).await;
    app.gql(
        actor.token(),
        "mutation($ws: ID!, $p: PlanId!) { selectPlan(workspaceId: $ws, plan: $p) { billing { status } } }",
        json!({ "ws": workspace, "p": plan }),
    )
    .await
    .data("selectPlan");
    customer
}

pub async fn stripe_post(path: &str, form: &[(&str, &str)]) -> Value {
    let url = stripe_fake().await;
    reqwest::Client::new()
        .post(format!("{url}/v1/{path}"))
        .basic_auth(STRIPE_KEY, Some(""))
        .form(form)
        .send()
        .await
        .expect("stripe")
        .json()
        .await
        .expect("json")
}

pub async fn stripe_delete(path: &str) -> Value {
    let url = stripe_fake().await;
    reqwest::Client::new()
        .delete(format!("{url}/v1/{path}"))
        .basic_auth(STRIPE_KEY, Some(""))
        .send()
        .await
        .expect("stripe")
        .json()
        .await
        .expect("json")
}

pub async fn stripe_subscription_of(customer: &str) -> Value {
    stripe_get(&format!("subscriptions?customer={customer}")).await["data"][0].clone()
}

async fn wait_for_stripe(check: impl AsyncFn() -> bool) -> bool {
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agency_hands_a_client_workspace_over_and_the_client_pays() {
    hand_over(false).await;
}

/// Issue 16: once the trial lapsed, a read-only workspace refused `inviteMember`, so the
/// agency had to pay before handing the workspace to the client who pays. Read-only means
/// no resource writes and nothing more: the agency renames, invites (and resends, revokes,
/// changes a role) while resources stay refused; the client joins as Owner, adds a card and
/// picks a plan, and the workspace is writable again with the agency as Admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_trial_is_handed_over_and_the_client_makes_it_writable() {
    hand_over(true).await;
}

async fn hand_over(lapsed: bool) {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let agency = app.sign_up("Agency").await;
    let client_ws = app.create_workspace(&agency, "Client Co").await;
    let ws = json!({ "ws": client_ws });
    app.gql(agency.token(), "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Receptionist\" }) { id } }", ws.clone())
        .await
        .data("createAgent");
    // The agency looked at billing already: the customer carries the agency's email.
    app.gql(
        agency.token(),
        "mutation($ws: ID!) { createSetupIntent(workspaceId: $ws) { clientSecret } }",
        ws.clone(),
    )
    .await
    .data("createSetupIntent");
    let customer = customer_of(&app, &client_ws).await;
    assert_eq!(
        stripe_get(&format!("customers/{customer}")).await["email"],
        agency.email.as_str()
    );

    let create_agent = "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Scheduler\" }) { id } }";
    if lapsed {
        lapse_trial(&app, &client_ws).await;
        app.gql(agency.token(), create_agent, ws.clone())
            .await
            .assert_code("TRIAL_EXPIRED");
        app.gql(
            agency.token(),
            "mutation($ws: ID!) { renameWorkspace(workspaceId: $ws, name: \"Client Co (yours)\") { name readOnly } }",
            ws.clone(),
        )
        .await
        .data("renameWorkspace");
        // A teammate invited, promoted while pending, and revoked: all still open.
        let helper = app
            .invite(&agency, &client_ws, "helper@example.com", "VIEWER")
            .await;
        app.gql(
            agency.token(),
            "mutation($ws: ID!, $id: ID!) { revokeInvitation(workspaceId: $ws, invitationId: $id) { status } }",
            json!({ "ws": client_ws, "id": helper }),
        )
        .await
        .data("revokeInvitation");
    }
    let invitation = app
        .invite(&agency, &client_ws, "client@example.com", "OWNER")
        .await;
    if lapsed {
        // The first email out (a resend before it goes replaces it), then a resend.
        app.mail
            .wait_for("client@example.com", "invitations/accept", 1)
            .await;
        app.gql(
            agency.token(),
            "mutation($ws: ID!, $id: ID!) { resendInvitation(workspaceId: $ws, invitationId: $id) { status } }",
            json!({ "ws": client_ws, "id": invitation }),
        )
        .await
        .data("resendInvitation");
    }
    let sent = if lapsed { 2 } else { 1 };
    let token = app
        .mail
        .wait_for("client@example.com", "invitations/accept", sent)
        .await[sent - 1]
        .token();
    let signed_up = app
        .gql(None, "mutation($t: String) { signUp(email: \"client@example.com\", password: \"correct horse battery\", name: \"Cleo\", invitationToken: $t) { session { token user { activeWorkspace { id viewerRole } } } } }", json!({ "t": token }))
        .await;
    let payload = signed_up.data("signUp")["session"].clone();
    assert_eq!(
        payload["user"]["activeWorkspace"],
        json!({ "id": client_ws, "viewerRole": "OWNER" })
    );
    let client = Actor {
        email: "client@example.com".into(),
        token: payload["token"].as_str().expect("token").to_owned(),
        id: String::new(),
        own_workspace: String::new(),
    };

    // The Stripe customer now bills the client.
    let billed_client = wait_for_stripe(async || {
        stripe_get(&format!("customers/{customer}")).await["email"] == "client@example.com"
    })
    .await;
    assert!(billed_client, "the customer's email follows the ownership");

    subscribe(&app, &client, &client_ws, "GROWTH").await;
    let seen_by_agency = app
        .gql(agency.token(), "query($ws: ID!) { workspace(id: $ws) { viewerRole agents { totalCount } billing { status plan { id } paymentMethods { last4 isDefault } } } }", ws.clone())
        .await;
    let seen = seen_by_agency.data("workspace");
    assert_eq!(seen["viewerRole"], "ADMIN");
    assert_eq!(seen["agents"]["totalCount"], 1);
    assert_eq!(seen["billing"]["plan"]["id"], "GROWTH");
    assert_eq!(seen["billing"]["paymentMethods"][0]["isDefault"], true);
    let subscription = stripe_subscription_of(&customer).await;
    assert_eq!(subscription["items"]["data"][0]["plan"]["amount"], 14900);
    // Writable again (it was read-only if the trial lapsed), for the agency too.
    app.gql(agency.token(), create_agent, ws.clone())
        .await
        .data("createAgent");
    app.gql(
        agency.token(),
        "mutation($ws: ID!) { deleteWorkspace(workspaceId: $ws) }",
        ws,
    )
    .await
    .assert_code("FORBIDDEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_workspace_ends_its_subscription_at_the_period_end() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let owner = app.sign_up("Owner").await;
    let customer = subscribe(&app, &owner, &owner.own_workspace, "STARTER").await;
    let recorded = stripe_subscription_of(&customer).await;
    // Another of ours that the database never learnt of (its answer was lost): it ends too.
    let plan = recorded["items"]["data"][0]["plan"]["id"]
        .as_str()
        .expect("plan");
    let lost = stripe_post(
        "subscriptions",
        &[
            ("customer", &customer),
            ("items[0][plan]", plan),
            ("metadata[workspace_id]", &owner.own_workspace),
        ],
    )
    .await;
    app.gql(
        owner.token(),
        "mutation($ws: ID!) { deleteWorkspace(workspaceId: $ws) }",
        json!({ "ws": owner.own_workspace }),
    )
    .await
    .data("deleteWorkspace");
    // The paid month runs out and no further one is charged, so a restore keeps the plan;
    // the one the database never knew of ends now.
    let path = format!("subscriptions/{}", recorded["id"].as_str().expect("id"));
    let ending = wait_for_stripe(async || {
        let subscription = stripe_get(&path).await;
        subscription["status"] != "canceled" && subscription["cancel_at_period_end"] == true
    })
    .await;
    assert!(
        ending,
        "ends at the period's end: {}",
        stripe_get(&path).await
    );
    let path = format!("subscriptions/{}", lost["id"].as_str().expect("id"));
    let ended = wait_for_stripe(async || stripe_get(&path).await["status"] == "canceled").await;
    assert!(ended, "cancelled: {}", stripe_get(&path).await);
}

/// A team workspace on an active Growth subscription that the fake does not hold: the fake
/// cannot make a subscription past due, unpaid or paused, so a test feeds the signed webhook
/// endpoint the `customer.subscription.updated` events Stripe sends for them (its
/// documented JSON, [`crate::webhooks::subscription_event`]), one second apart, and lets
/// the real worker apply them and send the emails.
struct FedSubscription<'a> {
    app: &'a TestApp,
    team: &'a crate::harness::Team,
    customer: String,
    subscription: String,
    base: i64,
}

impl<'a> FedSubscription<'a> {
    async fn seed(app: &'a TestApp, team: &'a crate::harness::Team, tag: &str) -> Self {
        let workspace: uuid::Uuid = team.workspace.parse().expect("uuid");
        let customer = format!("cus_{tag}_{}", workspace.simple());
        let subscription = format!("sub_{tag}");
        let mut conn = app.db.conn().await;
        for statement in [
            format!("INSERT INTO billing_accounts (workspace_id, stripe_customer_id, subscription_id) VALUES ('{workspace}', '{customer}', '{subscription}') ON CONFLICT DO NOTHING"),
            format!("UPDATE workspaces SET plan = 'growth', subscription_status = 'active', trial_ends_at = now() - interval '1 day' WHERE id = '{workspace}'"),
        ] {
            diesel::sql_query(statement).execute(&mut conn).await.expect("seeded");
        }
        let base = chrono::Utc::now().timestamp();
        FedSubscription {
            app,
            team,
            customer,
            subscription,
            base,
        }
    }

    /// Stripe's event `second` seconds after the seed, for the subscription in `status`.
    fn event(&self, second: i64, status: &str) -> String {
        use crate::webhooks::{documented_subscription, subscription_event};
        let object = documented_subscription(&self.subscription, &self.customer, status, None);
        subscription_event("customer.subscription.updated", self.base + second, &object)
    }

    async fn send(&self, second: i64, status: &str) {
        use crate::webhooks::{deliver, signed};
        let body = self.event(second, status);
        assert_eq!(deliver(self.app, &body, signed(&body)).await, 200);
    }

    async fn standing(&self) -> Value {
        self.app
            .gql(
                self.team.owner.token(),
                "query($ws: ID!) { workspace(id: $ws) { billingStatus readOnly } }",
                json!({ "ws": self.team.workspace }),
            )
            .await
            .data("workspace")
            .clone()
    }

    async fn wait_for(&self, expected: Value) {
        let mut seen = Value::Null;
        for _ in 0..150 {
            seen = self.standing().await;
            if seen == expected {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(seen, expected);
    }
}

/// A failed payment marks the workspace past due and emails the Owner and Admins once per
/// failure spell ([`FedSubscription`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_payment_marks_the_workspace_past_due_and_emails_owner_and_admins_once() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let team = app.team().await;
    let fed = FedSubscription::seed(&app, &team, "pastdue").await;
    // Two failures arrive at once; one more later: one email each.
    tokio::join!(fed.send(1, "past_due"), fed.send(2, "past_due"));
    fed.wait_for(json!({ "billingStatus": "PAST_DUE", "readOnly": false }))
        .await;
    fed.send(3, "past_due").await;
    let failed = |actor: &Actor| {
        app.mail
            .to(&actor.email)
            .iter()
            .filter(|m| m.subject().contains("payment for Owner's Workspace failed"))
            .count()
    };
    app.mail
        .wait_until(
            |_| failed(&team.owner) == 1 && failed(&team.admin) == 1,
            std::time::Duration::from_secs(20),
        )
        .await
        .expect("payment-failed emails");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        [
            failed(&team.owner),
            failed(&team.admin),
            failed(&team.member),
            failed(&team.viewer)
        ],
        [1, 1, 0, 0]
    );

    // Issue 16: `unpaid` (Stripe's retries ran out) never became read-only and its email
    // was skipped. Past due then unpaid is one failure spell: read-only, no second email.
    fed.send(4, "unpaid").await;
    fed.wait_for(json!({ "billingStatus": "UNPAID", "readOnly": true }))
        .await;
    // An older event delivered late changes nothing.
    fed.send(0, "active").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        fed.standing().await,
        json!({ "billingStatus": "UNPAID", "readOnly": true })
    );
    // Paid again: active.
    fed.send(5, "active").await;
    fed.wait_for(json!({ "billingStatus": "ACTIVE", "readOnly": false }))
        .await;
    // A new spell that goes straight to unpaid is told too.
    fed.send(6, "unpaid").await;
    app.mail
        .wait_until(
            |_| failed(&team.owner) == 2 && failed(&team.admin) == 2,
            std::time::Duration::from_secs(20),
        )
        .await
        .expect("a second payment-failed email");
    // Paused (the trial ended without a card, where Stripe is set to pause): read-only.
    fed.send(7, "paused").await;
    fed.wait_for(json!({ "billingStatus": "PAUSED", "readOnly": true }))
        .await;
}

/// Issue 26: "`past_due` stays writable for Stripe's whole retry schedule, which can be
/// weeks." Now it is writable for the grace period (7 days by default): the payment-failed
/// email names the day it becomes read-only; two days before, the scan (run by two workers
/// at once) sends the Owner and Admins one more notice; after it the workspace is read-only
/// while still PAST_DUE; paid again, it is writable and the next failure starts afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_due_turns_read_only_when_its_grace_period_ends() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let team = app.team().await;
    let workspace: uuid::Uuid = team.workspace.parse().expect("uuid");
    let fed = FedSubscription::seed(&app, &team, "grace").await;
    let mut conn = app.db.conn().await;
    fed.send(1, "past_due").await;
    fed.wait_for(json!({ "billingStatus": "PAST_DUE", "readOnly": false }))
        .await;

    #[derive(diesel::QueryableByName)]
    struct Failed {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
        payment_failed_at: Option<chrono::DateTime<chrono::Utc>>,
    }
    let failed_at = async || {
        let mut conn = app.db.conn().await;
        diesel::sql_query(format!(
            "SELECT payment_failed_at FROM workspaces WHERE id = '{workspace}'"
        ))
        .get_result::<Failed>(&mut conn)
        .await
        .expect("read")
        .payment_failed_at
    };
    let failed = failed_at().await.expect("the failure spell is recorded");
    let read_only_on = linkai_jobs::email::when(failed + chrono::Duration::days(7));
    app.mail
        .wait_until(
            |mail| {
                mail.to(&team.owner.email)
                    .iter()
                    .any(|m| m.subject().contains("failed"))
            },
            std::time::Duration::from_secs(20),
        )
        .await
        .expect("payment-failed email");
    let notice = app
        .mail
        .to(&team.owner.email)
        .into_iter()
        .find(|m| m.subject().contains("failed"))
        .expect("email");
    assert!(notice.decoded.contains(&read_only_on), "{}", notice.decoded);

    // Five days in: nothing is due yet. Two days before the end: one notice, however many
    // scans run.
    let scanner = crate::cards::worker_side(&app, None).await;
    let other = crate::cards::worker_side(&app, None).await;
    let early = linkai::billing::grace::scan(&scanner.db, failed + chrono::Duration::days(4))
        .await
        .expect("scanned");
    assert_eq!(early, 0);
    let at = failed + chrono::Duration::days(5) + chrono::Duration::hours(1);
    let (a, b) = tokio::join!(
        linkai::billing::grace::scan(&scanner.db, at),
        linkai::billing::grace::scan(&other.db, at)
    );
    assert_eq!(a.expect("scan") + b.expect("scan"), 1);
    let ending = |actor: &Actor| {
        app.mail
            .to(&actor.email)
            .iter()
            .filter(|m| m.subject().contains("becomes read-only on"))
            .count()
    };
    app.mail
        .wait_until(
            |_| ending(&team.owner) == 1 && ending(&team.admin) == 1,
            std::time::Duration::from_secs(20),
        )
        .await
        .expect("read-only-soon emails");
    assert_eq!([ending(&team.member), ending(&team.viewer)], [0, 0]);

    // The grace period is over: read-only, still past due, and writes are refused.
    diesel::sql_query(format!(
        "UPDATE workspaces SET payment_failed_at = now() - interval '7 days 1 minute' WHERE id = '{workspace}'"
    ))
    .execute(&mut conn)
    .await
    .expect("moved");
    fed.wait_for(json!({ "billingStatus": "PAST_DUE", "readOnly": true }))
        .await;
    let refused = app
        .gql(
            team.owner.token(),
            "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Late\" }) { id } }",
            json!({ "ws": team.workspace }),
        )
        .await;
    assert_eq!(refused.code(), Some("TRIAL_EXPIRED"));

    // Paid: writable again, and the spell is over.
    fed.send(2, "active").await;
    fed.wait_for(json!({ "billingStatus": "ACTIVE", "readOnly": false }))
        .await;
    assert_eq!(failed_at().await, None);
}

const SELECT_STARTER: &str = "mutation($ws: ID!) { selectPlan(workspaceId: $ws, plan: STARTER) {
  billing { status plan { id } } requiresAction { clientSecret } declined { code declineCode message } } }";
const STANDING: &str =
    "query($ws: ID!) { workspace(id: $ws) { billingStatus readOnly billing { plan { id } } } }";

/// A lapsed workspace with a customer whose default card is Stripe's test card `number`.
async fn lapsed_with_card(app: &TestApp, number: &str) -> (Actor, String) {
    let ada = app.sign_up("Ada").await;
    lapse_trial(app, &ada.own_workspace).await;
    let ws = json!({ "ws": ada.own_workspace });
    app.gql(
        ada.token(),
        "mutation($ws: ID!) { createSetupIntent(workspaceId: $ws) { clientSecret } }",
        ws,
    )
    .await
    .data("createSetupIntent");
    let customer = customer_of(app, &ada.own_workspace).await;
    set_card(app, &ada, &customer, number).await;
    (ada, customer)
}

pub async fn set_card(app: &TestApp, actor: &Actor, customer: &str, number: &str) {
    let card = add_test_card(customer, number).await;
    app.gql(actor.token(), "mutation($ws: ID!, $pm: String!) { setDefaultPaymentMethod(workspaceId: $ws, paymentMethodId: $pm) { status } }", json!({ "ws": actor.own_workspace, "pm": card }))
        .await
        .data("setDefaultPaymentMethod");
}

/// Waits until the workspace's billing reads `expected` (after a webhook's sync job).
async fn wait_for_standing(app: &TestApp, actor: &Actor, expected: &Value) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = app
            .gql(
                actor.token(),
                STANDING,
                json!({ "ws": actor.own_workspace }),
            )
            .await
            .data("workspace")
            .clone();
        if &last == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last
}

/// Issue 16: a first payment needing 3-D Secure read as ACTIVE and lifted read-only. Now
/// `selectPlan` answers INCOMPLETE with the client secret the frontend confirms with
/// Stripe.js; the workspace stays read-only until Stripe says the invoice is paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_that_needs_authentication_pays_only_once_the_customer_confirms() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let (ada, customer) = lapsed_with_card(&app, "4000002760003184").await;
    let ws = json!({ "ws": ada.own_workspace });
    let chosen = app.gql(ada.token(), SELECT_STARTER, ws.clone()).await;
    let chosen = chosen.data("selectPlan");
    assert_eq!(chosen["billing"]["status"], "INCOMPLETE");
    assert_eq!(chosen["declined"], Value::Null);
    let secret = chosen["requiresAction"]["clientSecret"]
        .as_str()
        .expect("a client secret")
        .to_owned();
    assert_eq!(
        app.gql(ada.token(), STANDING, ws.clone())
            .await
            .data("workspace"),
        &json!({ "billingStatus": "INCOMPLETE", "readOnly": true, "billing": { "plan": { "id": "STARTER" } } })
    );
    let create_agent =
        "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Bot\" }) { id } }";
    app.gql(ada.token(), create_agent, ws.clone())
        .await
        .assert_code("TRIAL_EXPIRED");

    // What stripe.confirmCardPayment does in the browser once the customer authenticates.
    let intent = secret.split("_secret").next().expect("intent id");
    stripe_post(
        &format!("payment_intents/{intent}/_authenticate"),
        &[("client_secret", &secret), ("success", "true")],
    )
    .await;
    assert_eq!(stripe_subscription_of(&customer).await["status"], "active");
    // Stripe announces it; the sync reads the subscription back.
    let paid = json!({ "id": "evt_3ds_paid", "type": "invoice.paid", "data": { "object": { "object": "invoice", "customer": customer } } }).to_string();
    assert_eq!(
        crate::webhooks::deliver(&app, &paid, crate::webhooks::signed(&paid)).await,
        200
    );
    let expected = json!({ "billingStatus": "ACTIVE", "readOnly": false, "billing": { "plan": { "id": "STARTER" } } });
    assert_eq!(wait_for_standing(&app, &ada, &expected).await, expected);
    app.gql(ada.token(), create_agent, ws)
        .await
        .data("createAgent");
}

/// A declined first payment says why, keeps the workspace read-only, and a void first
/// invoice (`incomplete_expired`, produced by the fake by voiding it) clears the plan it
/// was for; another card and choosing again make it ACTIVE, with one live subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_says_why_and_another_card_makes_the_plan_active() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let (ada, customer) = lapsed_with_card(&app, "4000000000000341").await;
    let ws = json!({ "ws": ada.own_workspace });
    let chosen = app.gql(ada.token(), SELECT_STARTER, ws.clone()).await;
    let chosen = chosen.data("selectPlan");
    assert_eq!(chosen["billing"]["status"], "INCOMPLETE");
    assert_eq!(chosen["requiresAction"], Value::Null);
    assert_eq!(chosen["declined"]["code"], "card_declined");
    assert!(chosen["declined"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(
        app.gql(ada.token(), STANDING, ws.clone())
            .await
            .data("workspace")["readOnly"],
        true
    );

    // Stripe voids the unpaid first invoice: the subscription is incomplete_expired.
    let subscription = stripe_get(&format!("subscriptions?customer={customer}&status=all")).await
        ["data"][0]
        .clone();
    let invoice = subscription["latest_invoice"]
        .as_str()
        .expect("invoice")
        .to_owned();
    stripe_post(&format!("invoices/{invoice}/void"), &[]).await;
    let expired = json!({ "id": "evt_void", "type": "customer.subscription.updated", "data": { "object": { "object": "subscription", "customer": customer } } }).to_string();
    assert_eq!(
        crate::webhooks::deliver(&app, &expired, crate::webhooks::signed(&expired)).await,
        200
    );
    let cleaned =
        json!({ "billingStatus": "TRIAL_EXPIRED", "readOnly": true, "billing": { "plan": null } });
    assert_eq!(wait_for_standing(&app, &ada, &cleaned).await, cleaned);

    set_card(&app, &ada, &customer, "4242424242424242").await;
    let again = app.gql(ada.token(), SELECT_STARTER, ws.clone()).await;
    assert_eq!(
        again.data("selectPlan"),
        &json!({ "billing": { "status": "ACTIVE", "plan": { "id": "STARTER" } }, "requiresAction": null, "declined": null })
    );
    let live = stripe_get(&format!("subscriptions?customer={customer}")).await;
    assert_eq!(live["data"].as_array().map(Vec::len), Some(1), "{live:#}");
}

/// A declined card, then another card chosen while the first payment still waits: the
/// incomplete subscription is replaced, not kept beside the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choosing_again_replaces_a_waiting_first_payment() {
    let app = TestApp::builder().with_stripe().start().await;
    let (ada, customer) = lapsed_with_card(&app, "4000000000000341").await;
    let ws = json!({ "ws": ada.own_workspace });
    let first = app.gql(ada.token(), SELECT_STARTER, ws.clone()).await;
    assert_eq!(first.data("selectPlan")["billing"]["status"], "INCOMPLETE");
    set_card(&app, &ada, &customer, "4242424242424242").await;
    let again = app.gql(ada.token(), SELECT_STARTER, ws).await;
    assert_eq!(again.data("selectPlan")["billing"]["status"], "ACTIVE");
    let all = stripe_get(&format!("subscriptions?customer={customer}&status=all")).await;
    let mut statuses: Vec<&str> = all["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["active", "canceled"]);
}

const DETAILS: &str = "mutation($ws: ID!, $d: BillingDetailsInput!) { updateBillingDetails(workspaceId: $ws, details: $d) {
  details { email emailSet companyName address { line1 city postalCode country } taxId { type value } } } }";

/// Issue 16: invoices could carry no billing email but the Owner's, no company, address or
/// tax id. They go on the Stripe customer now (Owner and Admin), are read back without a
/// Stripe call, keep what an update leaves out, and what Stripe or the input check refuses
/// changes nothing. A billing email set here stays when ownership moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_details_go_on_the_stripe_customer() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let team = app.team().await;
    let ws = &team.workspace;
    let full = json!({
        "email": "invoices@acme.test",
        "companyName": "Acme GmbH",
        "address": { "line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115", "country": "de" },
        "taxId": { "type": "eu_vat", "value": "DE123456789" },
    });
    app.gql(team.member.token(), DETAILS, json!({ "ws": ws, "d": full }))
        .await
        .assert_code("FORBIDDEN");
    let set = app
        .gql(team.admin.token(), DETAILS, json!({ "ws": ws, "d": full }))
        .await;
    let expected = json!({
        "email": "invoices@acme.test",
        "emailSet": true,
        "companyName": "Acme GmbH",
        "address": { "line1": "Hauptstr. 1", "city": "Berlin", "postalCode": "10115", "country": "DE" },
        "taxId": { "type": "eu_vat", "value": "DE123456789" },
    });
    assert_eq!(set.data("updateBillingDetails")["details"], expected);
    let customer = customer_of(&app, ws).await;
    let in_stripe = stripe_get(&format!("customers/{customer}")).await;
    assert_eq!(in_stripe["email"], "invoices@acme.test");
    assert_eq!(in_stripe["name"], "Acme GmbH");
    assert_eq!(in_stripe["address"]["country"], "DE");
    let tax_ids = stripe_get(&format!("customers/{customer}/tax_ids")).await;
    assert_eq!(tax_ids["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(tax_ids["data"][0]["value"], "DE123456789");

    // Refused by the check, or by Stripe (the fake wants an eu_vat of 11+ characters):
    // nothing changes, here or there.
    for (d, says) in [
        (
            json!({ "address": { "line1": "x", "city": "y", "postalCode": "1", "country": "Germany" } }),
            "country",
        ),
        (json!({ "companyName": "Acme\u{7}" }), "companyName"),
        (
            json!({ "taxId": { "type": "eu_vat", "value": "DE1" } }),
            "Stripe",
        ),
    ] {
        let res = app
            .gql(team.admin.token(), DETAILS, json!({ "ws": ws, "d": d }))
            .await;
        res.assert_code("BAD_USER_INPUT");
        assert!(res.message().contains(says), "{}", res.message());
    }
    let read = app
        .gql(team.owner.token(), "query($ws: ID!) { workspace(id: $ws) { billing { details { email emailSet companyName address { line1 city postalCode country } taxId { type value } } } } }", json!({ "ws": ws }))
        .await;
    assert_eq!(read.data("workspace")["billing"]["details"], expected);
    let tax_ids = stripe_get(&format!("customers/{customer}/tax_ids")).await;
    assert_eq!(tax_ids["data"][0]["value"], "DE123456789");

    // An update names what it changes.
    let renamed = app
        .gql(
            team.owner.token(),
            DETAILS,
            json!({ "ws": ws, "d": { "companyName": "Acme AG" } }),
        )
        .await;
    let details = &renamed.data("updateBillingDetails")["details"];
    assert_eq!(details["companyName"], "Acme AG");
    assert_eq!(details["email"], "invoices@acme.test");
    assert_eq!(details["taxId"]["value"], "DE123456789");

    // Ownership moves: the billing email set here stays on the customer. The job that
    // moves the customer's email to the new Owner is run here by hand as well as by the
    // workers, so the check does not depend on when they get to it.
    app.gql(
        team.owner.token(),
        "mutation($ws: ID!, $u: ID!) { transferOwnership(workspaceId: $ws, userId: $u) { id } }",
        json!({ "ws": ws, "u": team.admin.id }),
    )
    .await
    .data("transferOwnership");
    let fake = stripe_fake().await;
    let config = linkai::config::Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some(app.db.url()),
        "STRIPE_SECRET_KEY" => Some(STRIPE_KEY.to_owned()),
        "STRIPE_API_BASE" => Some(fake.to_owned()),
        _ => None,
    })
    .expect("config");
    let stripe = linkai::billing::stripe::StripeApi::new(config.stripe.as_ref().expect("stripe"))
        .expect("stripe");
    let db = linkai::App::connect(config).expect("app").db;
    let id: uuid::Uuid = ws.parse().expect("uuid");
    linkai::billing::sync::update_customer_email(&db, &stripe, id)
        .await
        .expect("the job runs");
    assert_eq!(
        stripe_get(&format!("customers/{customer}")).await["email"],
        "invoices@acme.test"
    );
}

const CARDS: &str = "query($ws: ID!) { workspace(id: $ws) { billing { paymentMethods { id isDefault expired expiresSoon } } } }";
const REMOVE: &str = "mutation($ws: ID!, $pm: String!) { removePaymentMethod(workspaceId: $ws, paymentMethodId: $pm) { status } }";

/// Issue 16: a card could not be removed and nothing said it had expired. Cards say
/// `expired` and `expiresSoon`; removing the default card moves the default to another
/// card, and the only card a live subscription is charged to stays (CONFLICT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_say_when_they_expire_and_the_one_a_subscription_needs_stays() {
    use chrono::Datelike;
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let customer = subscribe(&app, &ada, &ws, "GROWTH").await;
    // Valid through the end of this month: within 30 days, except early on the first of a
    // 31-day month.
    let now = chrono::Utc::now();
    let soon = crate::cards::save_card(&app, &customer, now.month(), now.year()).await;
    let next_month = chrono::NaiveDate::from_ymd_opt(now.year(), now.month(), 1)
        .and_then(|first| first.checked_add_months(chrono::Months::new(1)))
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("valid")
        .and_utc();
    let soon_expected = next_month - now <= chrono::Duration::days(30);
    let old = crate::cards::save_card(&app, &customer, 1, 2020).await;
    crate::cards::wait_for_cards(&app, &ada, &ws, |cards| cards.len() == 3).await;
    let cards = async || {
        let res = app.gql(ada.token(), CARDS, json!({ "ws": ws })).await;
        let mut cards = res.data("workspace")["billing"]["paymentMethods"]
            .as_array()
            .expect("cards")
            .clone();
        cards.sort_by_key(|c| c["id"].as_str().map(str::to_owned));
        cards
    };
    let listed = cards().await;
    assert_eq!(listed.len(), 3);
    let card = |id: &str| {
        listed
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
            .expect("listed")
    };
    let first = listed
        .iter()
        .find(|c| c["isDefault"] == true)
        .expect("a default")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(card(&first)["expired"], false);
    assert_eq!(card(&first)["expiresSoon"], false);
    assert_eq!(card(&soon)["expiresSoon"], soon_expected);
    assert_eq!(card(&soon)["expired"], false);
    assert_eq!(card(&old)["expired"], true);

    app.gql(
        ada.token(),
        REMOVE,
        json!({ "ws": ws, "pm": "pm_not_ours" }),
    )
    .await
    .assert_code("BAD_USER_INPUT");
    app.gql(ada.token(), REMOVE, json!({ "ws": ws, "pm": old }))
        .await
        .data("removePaymentMethod");
    // The default goes; the other card becomes the default.
    app.gql(ada.token(), REMOVE, json!({ "ws": ws, "pm": first }))
        .await
        .data("removePaymentMethod");
    let left = cards().await;
    assert_eq!(
        left,
        [json!({ "id": soon, "isDefault": true, "expired": false, "expiresSoon": soon_expected })]
    );
    // The only card of a live subscription stays.
    app.gql(ada.token(), REMOVE, json!({ "ws": ws, "pm": soon }))
        .await
        .assert_code("CONFLICT");
    assert_eq!(cards().await.len(), 1);
}
