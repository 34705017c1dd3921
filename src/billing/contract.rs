//! The adapter against Stripe's own data for the pinned API version
//! ([`super::super::transport::API_VERSION`]): the fixtures Stripe publishes for it
//! (`tests/fixtures/stripe/`, extracted by the script beside them). The local fake speaks
//! an older API, so green tests against it say nothing of real Stripe; these do.
//!
//! Every response type the adapter parses must parse these objects, and every value it
//! derives from them must come out present: a field the version lacks fails here, even
//! where our structs would take its absence quietly. Fixtures are not expanded, so the
//! expansions the adapter asks for are spliced in as Stripe would return them.

use serde_json::{json, Value};

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        serde_json::from_str::<Value>(include_str!(concat!(
            "../../tests/fixtures/stripe/2025-02-24.acacia/",
            $name,
            ".json"
        )))
        .expect("a fixture")
    };
}

/// Panics unless `object` has every dotted `path` (`a.b`; `a[].b` for a list's first item),
/// null or not.
fn require(object: &Value, paths: &[&str]) {
    for path in paths {
        let mut at = object;
        for part in path.split('.') {
            let (key, first) = match part.strip_suffix("[]") {
                Some(key) => (key, true),
                None => (part, false),
            };
            at = at
                .get(key)
                .unwrap_or_else(|| panic!("`{path}` is not in {object:#}"));
            if first {
                at = at.get(0).unwrap_or_else(|| panic!("`{path}` is empty"));
            }
        }
    }
}

fn parse<T: for<'de> Deserialize<'de>>(object: Value) -> T {
    serde_json::from_value(object).expect("the adapter's type parses Stripe's fixture")
}

/// A subscription as `create_subscription` and `subscriptions` get it: its latest invoice
/// expanded with the invoice's payment intent, whose status is `intent_status`.
fn expanded_subscription(status: &str, intent_status: &str) -> Value {
    let mut intent = fixture!("payment_intent");
    intent["status"] = json!(intent_status);
    let mut invoice = fixture!("invoice");
    require(&invoice, &["payment_intent"]);
    invoice["payment_intent"] = intent;
    let mut subscription = fixture!("subscription");
    subscription["status"] = json!(status);
    subscription["latest_invoice"] = invoice;
    subscription
}

#[test]
fn a_subscription_gives_its_status_period_plan_and_flags() {
    let raw = fixture!("subscription");
    require(
        &raw,
        &[
            "id",
            "status",
            "metadata",
            "cancel_at_period_end",
            "current_period_start",
            "current_period_end",
            "trial_end",
            "items.data[].id",
            "items.data[].plan.id",
            "items.data[].quantity",
            "latest_invoice",
        ],
    );
    let subscription: Subscription = parse(raw.clone());
    assert_eq!(subscription.status, raw["status"].as_str().expect("status"));
    assert!(subscription.current_period_start.is_some(), "period start");
    assert!(subscription.current_period_end.is_some(), "period end");
    assert!(subscription.price_id(None).is_some(), "the plan it bills");
    assert!(subscription.items.data.iter().all(|i| i.quantity.is_some()));
    let item: SubscriptionItem = parse(fixture!("subscription_item"));
    require(
        &fixture!("subscription_item"),
        &["id", "plan.id", "quantity"],
    );
    assert!(item.plan.is_some() && item.quantity.is_some());
}

#[test]
fn a_first_payment_says_what_it_needs() {
    let needs_action: Subscription = parse(expanded_subscription("incomplete", "requires_action"));
    assert!(
        matches!(
            needs_action.pending_payment(),
            Some(PendingPayment::RequiresAction { client_secret }) if !client_secret.is_empty()
        ),
        "{:?}",
        needs_action.pending_payment()
    );
    let intent = fixture!("payment_intent");
    require(&intent, &["status", "client_secret", "last_payment_error"]);
    let declined: Subscription = parse(expanded_subscription(
        "incomplete",
        "requires_payment_method",
    ));
    assert!(matches!(
        declined.pending_payment(),
        Some(PendingPayment::Declined { .. })
    ));
    let paid: Subscription = parse(expanded_subscription("active", "succeeded"));
    assert_eq!(paid.pending_payment(), None);
}

#[test]
fn invoices_cards_customers_and_plans_give_what_is_mirrored() {
    let invoice = fixture!("invoice");
    require(
        &invoice,
        &[
            "id",
            "number",
            "status",
            "amount_due",
            "currency",
            "created",
            "hosted_invoice_url",
            "invoice_pdf",
        ],
    );
    let parsed: Invoice = parse(invoice);
    assert!(!parsed.currency.is_empty());

    let method = fixture!("payment_method");
    require(
        &method,
        &[
            "id",
            "customer",
            "created",
            "card.brand",
            "card.last4",
            "card.exp_month",
            "card.exp_year",
        ],
    );
    let card: PaymentMethod = parse(method);
    let card = card.card.expect("a card");
    assert!(card.exp_month > 0 && card.exp_year > 0, "card expiry");

    let customer = fixture!("customer");
    require(
        &customer,
        &["id", "invoice_settings.default_payment_method"],
    );
    let _: Customer = parse(customer);

    let mut plan = fixture!("plan");
    require(&plan, &["id", "amount", "created", "product", "metadata"]);
    let product = fixture!("product");
    require(&product, &["name", "metadata"]);
    plan["product"] = product;
    let _: StripePlan = parse(plan);

    let intent = fixture!("setup_intent");
    require(&intent, &["client_secret"]);
    let _: SetupIntent = parse(intent);
    let tax_id = fixture!("tax_id");
    require(&tax_id, &["id", "type", "value"]);
    let _: StripeTaxId = parse(tax_id);
}

#[test]
fn an_event_gives_its_id_kind_time_and_object() {
    let event = fixture!("event");
    require(
        &event,
        &[
            "id",
            "type",
            "created",
            "data.object.object",
            "data.object.id",
        ],
    );
}
