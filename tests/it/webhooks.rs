//! Stripe webhooks: signatures, once-only recording, and convergence to Stripe's state
//! whatever the order or duplication of deliveries; the reconciliation job repairs missed
//! ones.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};

use crate::billing::{stripe_delete, stripe_post, stripe_subscription_of, subscribe};
use crate::harness::{Actor, TestApp, WEBHOOK_SECRET};

pub async fn deliver(app: &TestApp, body: &str, signature: Option<String>) -> u16 {
    let mut request = app
        .client()
        .post(format!("{}/webhooks/stripe", app.base_url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    request.send().await.expect("delivered").status().as_u16()
}

pub fn signed(body: &str) -> Option<String> {
    Some(linkai::billing::webhook::sign(
        WEBHOOK_SECRET,
        body.as_bytes(),
        chrono::Utc::now().timestamp(),
    ))
}

/// An event as Stripe documents it (API reference, "The Event object"), carrying `object`
/// as it was at `created`.
pub fn subscription_event(kind: &str, created: i64, object: &Value) -> String {
    json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "api_version": linkai::billing::transport::API_VERSION,
        "created": created,
        "type": kind,
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": object, "previous_attributes": {} },
    })
    .to_string()
}

/// A subscription as Stripe's API reference shows it, in `status`, billing `price` (if any)
/// over the period `period` (unix seconds; a month from now if none).
pub fn documented_subscription(
    id: &str,
    customer: &str,
    status: &str,
    price: Option<(&str, (i64, i64))>,
) -> Value {
    let now = chrono::Utc::now().timestamp();
    let (price, (start, end)) = match price {
        Some((price, period)) => (Some(price), period),
        None => (None, (now, now + 30 * 86_400)),
    };
    let items: Vec<Value> = price
        .into_iter()
        .map(|price| {
            json!({
                "id": format!("si_{id}"),
                "object": "subscription_item",
                "subscription": id,
                "quantity": 1,
                "price": { "id": price, "object": "price", "recurring": { "interval": "month" } },
                "plan": { "id": price, "object": "plan", "interval": "month" },
            })
        })
        .collect();
    json!({
        "id": id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "collection_method": "charge_automatically",
        "cancel_at_period_end": false,
        "canceled_at": null,
        "created": start,
        "current_period_start": start,
        "current_period_end": end,
        "trial_start": null,
        "trial_end": null,
        "latest_invoice": format!("in_{id}"),
        "livemode": false,
        "metadata": {},
        "items": { "object": "list", "data": items, "has_more": false, "url": format!("/v1/subscription_items?subscription={id}") },
    })
}

async fn recorded_events(app: &TestApp) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.db.conn().await;
    diesel::sql_query("SELECT count(*) AS n FROM stripe_events")
        .get_result::<Count>(&mut conn)
        .await
        .expect("count")
        .n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_correctly_signed_events_are_recorded_and_only_once() {
    let app = TestApp::builder().with_stripe().start().await;
    let body = r#"{"id":"evt_sig_1","type":"invoice.paid","data":{"object":{"object":"invoice","customer":"cus_unknown"}}}"#;
    let now = chrono::Utc::now().timestamp();
    let sign = |secret: &str, body: &str, at: i64| {
        linkai::billing::webhook::sign(secret, body.as_bytes(), at)
    };
    let mut changed = body.to_owned();
    changed.replace_range(10..11, "X");
    let valid = sign(WEBHOOK_SECRET, body, now);
    let wrong = sign("whsec_wrong", body, now);
    let two = format!(
        "{},{}",
        wrong,
        valid.split_once(',').map(|(_, v1)| v1).unwrap_or_default()
    );
    let cases: [(&str, &str, Option<String>, u16); 6] = [
        ("wrong secret", body, Some(wrong.clone()), 400),
        ("changed byte", &changed, Some(valid.clone()), 400),
        (
            "old timestamp",
            body,
            Some(sign(WEBHOOK_SECRET, body, now - 301)),
            400,
        ),
        ("missing header", body, None, 400),
        ("valid", body, Some(valid.clone()), 200),
        ("two signatures, one valid", body, Some(two), 200),
    ];
    for (name, body, signature, status) in cases {
        assert_eq!(deliver(&app, body, signature).await, status, "{name}");
        if status == 400 {
            assert_eq!(recorded_events(&app).await, 0, "{name} must write nothing");
        }
    }
    assert_eq!(
        recorded_events(&app).await,
        1,
        "a redelivery records nothing new"
    );
}

async fn billing(app: &TestApp, actor: &Actor, workspace: &str) -> Value {
    app.gql(actor.token(), "query($ws: ID!) { workspace(id: $ws) { billingStatus readOnly billing { plan { id } cancelAtPeriodEnd } } }", json!({ "ws": workspace }))
        .await
        .data("workspace")
        .clone()
}

async fn wait_for(app: &TestApp, actor: &Actor, workspace: &str, expected: &Value) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = billing(app, actor, workspace).await;
        if &last == expected {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

fn event(id: &str, kind: &str, object: &Value) -> String {
    json!({ "id": id, "type": kind, "data": { "object": object } }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_shuffled_events_converge_to_stripes_state() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let mut finals = Vec::new();
    for (round, shuffle) in [(0, false), (1, true), (2, true)] {
        let owner = app.sign_up(&format!("Owner{round}")).await;
        let customer = subscribe(&app, &owner, &owner.own_workspace, "GROWTH").await;
        let subscription = stripe_subscription_of(&customer).await;
        let id = subscription["id"].as_str().expect("id").to_owned();
        // What happens in Stripe, each step announced by an event carrying the object as
        // it was then.
        let mut events = Vec::new();
        let updated = stripe_post(
            &format!("subscriptions/{id}"),
            &[("cancel_at_period_end", "true")],
        )
        .await;
        events.push(event(
            &format!("evt_{round}_1"),
            "customer.subscription.updated",
            &updated,
        ));
        let paid =
            json!({ "object": "invoice", "id": format!("in_{round}"), "customer": customer });
        events.push(event(&format!("evt_{round}_2"), "invoice.paid", &paid));
        let deleted = stripe_delete(&format!("subscriptions/{id}")).await;
        events.push(event(
            &format!("evt_{round}_3"),
            "customer.subscription.deleted",
            &deleted,
        ));
        let mut deliveries: Vec<String> = events.iter().chain(events.iter()).cloned().collect();
        if shuffle {
            deliveries.shuffle(&mut rand::rngs::StdRng::seed_from_u64(round));
        }
        for body in &deliveries {
            assert_eq!(deliver(&app, body, signed(body)).await, 200);
        }
        let expected = json!({ "billingStatus": "CANCELED", "readOnly": true, "billing": { "plan": { "id": "GROWTH" }, "cancelAtPeriodEnd": true } });
        finals.push(wait_for(&app, &owner, &owner.own_workspace, &expected).await);
    }
    assert_eq!(
        finals[0], finals[1],
        "shuffled and duplicated delivery ends where in-order does"
    );
    assert_eq!(finals[1], finals[2]);
    assert_eq!(finals[0]["billingStatus"], "CANCELED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_repairs_a_missed_webhook() {
    let app = TestApp::builder().with_stripe().start().await;
    let owner = app.sign_up("Owner").await;
    let customer = subscribe(&app, &owner, &owner.own_workspace, "STARTER").await;
    let id = stripe_subscription_of(&customer).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    stripe_post(
        &format!("subscriptions/{id}"),
        &[("cancel_at_period_end", "true")],
    )
    .await;
    // No webhook arrives. The periodic job notices.
    assert_eq!(
        billing(&app, &owner, &owner.own_workspace).await["billing"]["cancelAtPeriodEnd"],
        false
    );
    let url = app.db.url();
    let stripe_base = crate::harness::stripe_fake().await.to_owned();
    let config = linkai::config::Config::from_lookup(|name| match name {
        "DATABASE_URL" => Some(url.clone()),
        "STRIPE_SECRET_KEY" => Some(crate::harness::STRIPE_KEY.into()),
        "STRIPE_API_BASE" => Some(stripe_base.clone()),
        _ => None,
    })
    .expect("config");
    let worker_side = linkai::App::connect(config).expect("app");
    let stripe = worker_side.stripe.as_ref().expect("stripe configured");
    let synced = linkai::billing::sync::reconcile(&worker_side.db, stripe, Duration::from_secs(60))
        .await
        .expect("reconciled");
    assert!(synced.synced >= 1);
    assert_eq!(
        billing(&app, &owner, &owner.own_workspace).await["billing"]["cancelAtPeriodEnd"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_card_saved_becomes_the_default_through_the_webhook() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let owner = app.sign_up("Owner").await;
    app.gql(
        owner.token(),
        "mutation($ws: ID!) { createSetupIntent(workspaceId: $ws) { clientSecret } }",
        json!({ "ws": owner.own_workspace }),
    )
    .await
    .data("createSetupIntent");
    let customer = crate::billing::customer_of(&app, &owner.own_workspace).await;
    let card = crate::billing::add_card(&customer).await;
    let body = event(
        "evt_pm_1",
        "payment_method.attached",
        &json!({ "object": "payment_method", "id": card, "customer": customer }),
    );
    assert_eq!(deliver(&app, &body, signed(&body)).await, 200);
    let query =
        "query($ws: ID!) { workspace(id: $ws) { billing { paymentMethods { id isDefault } } } }";
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = app
            .gql(owner.token(), query, json!({ "ws": owner.own_workspace }))
            .await
            .data("workspace")
            .clone();
        if seen["billing"]["paymentMethods"][0]["isDefault"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen["billing"]["paymentMethods"],
        json!([{ "id": card, "isDefault": true }])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_follow_stripe_products_and_their_limits_apply() {
    let key = format!("linkai_plan_{}", uuid::Uuid::new_v4().simple());
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .with_plan_key(&key)
        .start()
        .await;
    let product = stripe_post(
        "products",
        &[
            ("name", "Starter Plus"),
            (&format!("metadata[{key}]"), "starter"),
            ("metadata[agents]", "4"),
            ("metadata[messages]", "3000"),
        ],
    )
    .await;
    let product_id = product["id"].as_str().expect("id");
    stripe_post(
        "plans",
        &[
            ("amount", "5900"),
            ("currency", "usd"),
            ("interval", "month"),
            ("product", product_id),
        ],
    )
    .await;
    let body = event("evt_product_1", "product.updated", &product);
    assert_eq!(deliver(&app, &body, signed(&body)).await, 200);

    let query = "{ plans { id name monthlyPriceCents limits { agents messages sms } } }";
    let mut starter = Value::Null;
    for _ in 0..100 {
        starter = app.gql(None, query, json!({})).await.data("plans")[0].clone();
        if starter["monthlyPriceCents"] == 5900 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        starter,
        json!({ "id": "STARTER", "name": "Starter Plus", "monthlyPriceCents": 5900, "limits": { "agents": 4, "messages": 3000, "sms": 500 } })
    );

    let owner = app.sign_up("Owner").await;
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "UPDATE workspaces SET plan = 'starter', trial_ends_at = now() - interval '1 day' WHERE id = '{}'",
        owner.own_workspace
    ))
    .execute(&mut conn)
    .await
    .expect("plan");
    let create =
        "mutation($ws: ID!) { createAgent(workspaceId: $ws, input: { name: \"Bot\" }) { id } }";
    for _ in 0..4 {
        app.gql(owner.token(), create, json!({ "ws": owner.own_workspace }))
            .await
            .data("createAgent");
    }
    app.gql(owner.token(), create, json!({ "ws": owner.own_workspace }))
        .await
        .assert_code("USAGE_LIMIT_REACHED");
}

/// An event's payload as recorded, and the customer it was recorded for.
async fn recorded(app: &TestApp, id: &str) -> Option<(Value, Option<String>)> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        stripe_customer_id: Option<String>,
    }
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "SELECT payload, stripe_customer_id FROM stripe_events WHERE id = '{id}'"
    ))
    .get_result::<Row>(&mut conn)
    .await
    .ok()
    .map(|row| (row.payload, row.stripe_customer_id))
}

/// Issue 26: "Stripe event payloads (emails, addresses, card digits) are kept forever, even
/// after the account is deleted." Each event is recorded with its customer. Deleting an
/// account deletes the workspace only it belonged to, and that scrubs the workspace's events
/// (keeping their ids, so a redelivery stays a no-op); a team's events are untouched; past
/// the retention period every event goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_events_are_scrubbed_with_their_workspace_and_pruned_after_retention() {
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .start()
        .await;
    let team = app.team().await;
    let own = crate::billing::with_card(&app, &team.admin, &team.admin.own_workspace).await;
    let shared = crate::billing::with_card(&app, &team.owner, &team.workspace).await;
    let customer = |id: &str, email: &str| {
        json!({ "id": id, "object": "customer", "email": email,
                "address": { "line1": "1 Main St", "city": "Springfield" } })
    };
    let events = [
        ("evt_scrub_own", customer(&own, &team.admin.email)),
        ("evt_scrub_team", customer(&shared, &team.owner.email)),
    ];
    for (id, object) in &events {
        let body = event(id, "customer.updated", object);
        assert_eq!(deliver(&app, &body, signed(&body)).await, 200);
    }
    let (payload, about) = recorded(&app, "evt_scrub_own").await.expect("recorded");
    assert_eq!(about.as_deref(), Some(own.as_str()));
    assert_eq!(payload["data"]["object"]["email"], json!(team.admin.email));

    app.gql(
        team.admin.token(),
        "mutation($p: String!) { deleteAccount(password: $p) }",
        json!({ "p": crate::harness::PASSWORD }),
    )
    .await
    .data("deleteAccount");
    let scrubbed = json!({ "id": "evt_scrub_own", "type": "customer.updated", "scrubbed": true });
    let mut seen = Value::Null;
    for _ in 0..150 {
        seen = recorded(&app, "evt_scrub_own")
            .await
            .expect("the id is kept")
            .0;
        if seen == scrubbed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, scrubbed, "the deleted workspace's event is scrubbed");
    let (team_event, _) = recorded(&app, "evt_scrub_team").await.expect("kept");
    assert_eq!(
        team_event["data"]["object"]["email"],
        json!(team.owner.email)
    );
    // A redelivery of a scrubbed event is still known: nothing is recorded again.
    let before = recorded_events(&app).await;
    let body = event("evt_scrub_own", "customer.updated", &events[0].1);
    assert_eq!(deliver(&app, &body, signed(&body)).await, 200);
    assert_eq!(recorded_events(&app).await, before);
    assert_eq!(
        recorded(&app, "evt_scrub_own").await.expect("kept").0,
        scrubbed
    );

    // Past the retention period (the scheduled scan runs this with now − 30 days).
    let mut conn = app.db.conn().await;
    let future = chrono::Utc::now() + chrono::Duration::minutes(1);
    let pruned = linkai::billing::webhook::prune(&mut conn, future)
        .await
        .expect("pruned");
    assert_eq!(pruned as i64, before);
    assert_eq!(recorded_events(&app).await, 0);
}
