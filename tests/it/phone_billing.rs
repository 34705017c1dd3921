//! Phone numbers billed as a quantity on the workspace's subscription (issue 16, item 7),
//! against the Stripe fake: the operator's products carry a per-number price, and the
//! subscription item's quantity follows creates and deletes, plan changes and the
//! reconciliation.

use std::time::Duration;

use diesel_async::RunQueryDsl;
use serde_json::{json, Value};

use crate::billing::{stripe_get, stripe_post, subscribe};
use crate::harness::{Actor, TestApp};

/// A plan product as the operator sets it up (docs/billing.md, "Billing for operators"): the plan's
/// monthly price, and a per-number price marked `item=phone_number`.
async fn product(key: &str, plan: &str, cents: &str, per_number_cents: &str) -> String {
    let product = stripe_post(
        "products",
        &[("name", plan), (&format!("metadata[{key}]"), plan)],
    )
    .await;
    let id = product["id"].as_str().expect("id").to_owned();
    let price = |amount: &str, phone: bool| {
        let mut form = vec![
            ("amount", amount.to_owned()),
            ("currency", "usd".to_owned()),
            ("interval", "month".to_owned()),
            ("product", id.clone()),
        ];
        if phone {
            form.push(("metadata[item]", "phone_number".to_owned()));
        }
        form
    };
    let form = price(cents, false);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    stripe_post("plans", &form).await;
    let form = price(per_number_cents, true);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    stripe_post("plans", &form).await["id"]
        .as_str()
        .expect("price")
        .to_owned()
}

/// An app with workers whose operator set Stripe up before it started (the workers sync the
/// plans as they start; a price added later comes with its webhook or the next
/// reconciliation): a Growth and a Starter product under a plan key of the test's own, each
/// with a per-number price. Answers the app, the key and the two per-number prices.
async fn app_billing_numbers() -> (TestApp, String, String, String) {
    let key = format!("linkai_plan_{}", uuid::Uuid::new_v4().simple());
    let growth_number = product(&key, "growth", "14900", "300").await;
    let starter_number = product(&key, "starter", "4900", "200").await;
    let app = TestApp::builder()
        .with_stripe()
        .with_workers()
        .with_plan_key(&key)
        .start()
        .await;
    (app, key, growth_number, starter_number)
}

async fn phone_item_id(app: &TestApp, workspace: &str) -> Option<String> {
    #[derive(diesel::QueryableByName)]
    struct Item {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        phone_numbers_item_id: Option<String>,
    }
    let mut conn = app.db.conn().await;
    diesel::sql_query(format!(
        "SELECT phone_numbers_item_id FROM billing_accounts WHERE workspace_id = '{workspace}'"
    ))
    .get_result::<Item>(&mut conn)
    .await
    .ok()
    .and_then(|item| item.phone_numbers_item_id)
}

/// The phone numbers' item as Stripe has it: (price, quantity), or `None` when there is
/// none.
async fn billed(app: &TestApp, workspace: &str) -> Option<(String, i64)> {
    let id = phone_item_id(app, workspace).await?;
    let item = stripe_get(&format!("subscription_items/{id}")).await;
    if item.get("error").is_some() {
        return None;
    }
    let quantity = match &item["quantity"] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    Some((
        item["plan"]["id"].as_str().expect("price").to_owned(),
        quantity.expect("quantity"),
    ))
}

async fn wait_billed(app: &TestApp, workspace: &str, expected: Option<(&str, i64)>) {
    let expected = expected.map(|(price, n)| (price.to_owned(), n));
    let mut seen = None;
    for _ in 0..150 {
        seen = billed(app, workspace).await;
        if seen == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, expected, "the phone numbers' item in Stripe");
}

async fn create_number(app: &TestApp, actor: &Actor, workspace: &str, number: &str) -> String {
    app.gql(
        actor.token(),
        "mutation($ws: ID!, $n: String!) { createPhoneNumber(workspaceId: $ws, input: { name: \"Line\", number: $n }) { id } }",
        json!({ "ws": workspace, "n": number }),
    )
    .await
    .data("createPhoneNumber")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn delete_number(app: &TestApp, actor: &Actor, workspace: &str, id: &str) {
    app.gql(
        actor.token(),
        "mutation($ws: ID!, $id: ID!) { deletePhoneNumber(workspaceId: $ws, id: $id) }",
        json!({ "ws": workspace, "id": id }),
    )
    .await
    .data("deletePhoneNumber");
}

/// Issue 16: "Phone number billing is part of the workspace's subscription", yet a phone
/// number only counted against a limit. Two numbers made in the trial bill nothing until a
/// plan is chosen; then the subscription carries them at the plan's per-number price, the
/// quantity follows creates and deletes, a plan change moves them to the new plan's price,
/// nothing is charged while the trial runs, the reconciliation repairs a quantity changed
/// in Stripe, and deleting the last number removes the item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_numbers_are_a_quantity_on_the_subscription() {
    let (app, key, growth_number, starter_number) = app_billing_numbers().await;

    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    let first = create_number(&app, &ada, &ws, "+15550000001").await;
    create_number(&app, &ada, &ws, "+15550000002").await;
    assert_eq!(
        phone_item_id(&app, &ws).await,
        None,
        "no plan, nothing billed"
    );

    let customer = subscribe(&app, &ada, &ws, "GROWTH").await;
    wait_billed(&app, &ws, Some((&growth_number, 2))).await;

    let third = create_number(&app, &ada, &ws, "+15550000003").await;
    wait_billed(&app, &ws, Some((&growth_number, 3))).await;
    delete_number(&app, &ada, &ws, &first).await;
    wait_billed(&app, &ws, Some((&growth_number, 2))).await;

    // The trial still runs: Stripe has charged nothing.
    let invoices = stripe_get(&format!("invoices?customer={customer}")).await;
    let charged: Vec<&Value> = invoices["data"]
        .as_array()
        .expect("invoices")
        .iter()
        .filter(|invoice| invoice["amount_paid"].as_i64().unwrap_or(0) > 0)
        .collect();
    assert!(charged.is_empty(), "charged in the trial: {charged:?}");

    // A plan change moves the numbers to the new plan's per-number price.
    let old_item = phone_item_id(&app, &ws).await.expect("an item");
    app.gql(
        ada.token(),
        "mutation($ws: ID!) { selectPlan(workspaceId: $ws, plan: STARTER) { billing { plan { id } } } }",
        json!({ "ws": ws }),
    )
    .await
    .data("selectPlan");
    wait_billed(&app, &ws, Some((&starter_number, 2))).await;
    let gone = stripe_get(&format!("subscription_items/{old_item}")).await;
    assert!(
        gone.get("error").is_some(),
        "the old item was removed: {gone}"
    );

    // Someone changes the quantity in the dashboard; the reconciliation puts it back.
    let item = phone_item_id(&app, &ws).await.expect("an item");
    stripe_post(&format!("subscription_items/{item}"), &[("quantity", "7")]).await;
    wait_billed(&app, &ws, Some((&starter_number, 7))).await;
    let worker = crate::cards::worker_side(&app, Some(&key)).await;
    let stripe = worker.stripe.as_ref().expect("stripe");
    linkai::billing::sync::reconcile(&worker.db, stripe, Duration::from_secs(60))
        .await
        .expect("reconciled");
    wait_billed(&app, &ws, Some((&starter_number, 2))).await;

    // The last numbers go: so does the item.
    for id in [third] {
        delete_number(&app, &ada, &ws, &id).await;
    }
    wait_billed(&app, &ws, Some((&starter_number, 1))).await;
    let numbers = app
        .gql(
            ada.token(),
            "query($ws: ID!) { workspace(id: $ws) { phoneNumbers { edges { node { id } } } } }",
            json!({ "ws": ws }),
        )
        .await;
    let last = numbers.data("workspace")["phoneNumbers"]["edges"][0]["node"]["id"]
        .as_str()
        .expect("one left")
        .to_owned();
    delete_number(&app, &ada, &ws, &last).await;
    for _ in 0..150 {
        if phone_item_id(&app, &ws).await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(phone_item_id(&app, &ws).await, None);
    let removed = stripe_get(&format!("subscription_items/{item}")).await;
    assert!(
        removed.get("error").is_some(),
        "the item was removed: {removed}"
    );
}

/// Every subscription item Stripe has at one of `prices` (each test makes its own), as
/// (item, price, quantity). The local fake keeps an item added to a subscription out of
/// the subscription's own list, so this reads all of the fake's items, page by page.
async fn items_in_stripe(prices: &[&str]) -> Vec<(String, String, i64)> {
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(last) => format!("subscription_items?limit=100&starting_after={last}"),
            None => "subscription_items?limit=100".to_owned(),
        };
        let page = stripe_get(&path).await;
        let data = page["data"].as_array().expect("items").clone();
        for item in &data {
            let price = item["plan"]["id"].as_str().unwrap_or_default();
            if prices.contains(&price) {
                let quantity = match &item["quantity"] {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                };
                found.push((
                    item["id"].as_str().expect("id").to_owned(),
                    price.to_owned(),
                    quantity.expect("quantity"),
                ));
            }
        }
        match (page["has_more"].as_bool(), data.last()) {
            (Some(true), Some(last)) => after = last["id"].as_str().map(str::to_owned),
            _ => return found,
        }
    }
}

/// Waits until Stripe bills exactly one phone-numbers item, at `price`, for `count`
/// numbers, and the database knows that item.
async fn wait_one_item(app: &TestApp, ws: &str, prices: &[&str], count: i64) {
    let mut seen = Vec::new();
    for _ in 0..300 {
        seen = items_in_stripe(prices).await;
        if let [(id, price, quantity)] = seen.as_slice() {
            let known = phone_item_id(app, ws).await;
            if price == prices[0] && *quantity == count && known.as_deref() == Some(id.as_str()) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "expected one item of {count} at {}, Stripe has {seen:?}",
        prices[0]
    );
}

/// Issue 26: "A burst of creates can add several items, and one is billed while the
/// others are forgotten." Twenty numbers created at once, ten deleted at once, then five
/// deleted while five more are created, each queueing its sync: checked from Stripe's side, Stripe has exactly one
/// phone-numbers item, whose quantity is the count, and the database knows that item.
/// (An extra item left by a crash is removed from the subscription's own list, which the
/// fake does not keep: `phone_numbers`' unit test covers that decision.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_creates_and_deletes_leaves_one_item_billing_the_count() {
    let (app, _, growth_number, starter_number) = app_billing_numbers().await;
    let prices = [growth_number.as_str(), starter_number.as_str()];
    let ada = app.sign_up("Ada").await;
    let ws = ada.own_workspace.clone();
    subscribe(&app, &ada, &ws, "GROWTH").await;

    let numbers: Vec<String> = (0..20).map(|i| format!("+1555020{i:04}")).collect();
    let created = futures::future::join_all(
        numbers
            .iter()
            .map(|number| create_number(&app, &ada, &ws, number)),
    )
    .await;
    wait_one_item(&app, &ws, &prices, 20).await;

    // Ten deleted at once, then five deleted while five are made (the plan allows 20).
    futures::future::join_all(
        created[..10]
            .iter()
            .map(|id| delete_number(&app, &ada, &ws, id)),
    )
    .await;
    wait_one_item(&app, &ws, &prices, 10).await;
    type Task<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
    let mut burst: Vec<Task<'_>> = Vec::new();
    for id in &created[10..15] {
        burst.push(Box::pin(delete_number(&app, &ada, &ws, id)));
    }
    for i in 0..5 {
        let (app, ada, ws) = (&app, &ada, &ws);
        burst.push(Box::pin(async move {
            create_number(app, ada, ws, &format!("+1555030{i:04}")).await;
        }));
    }
    futures::future::join_all(burst).await;
    wait_one_item(&app, &ws, &prices, 10).await;
}
