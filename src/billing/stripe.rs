//! Our narrow Stripe adapter: the calls we make and the fields we mirror, parsed leniently,
//! so it works the same against Stripe and against the local fake used in tests.
//!
//! Requests are built with async-stripe's request types and sent by our own client
//! ([`super::transport`]: the pinned API version, timeouts, retries); responses are read as
//! plain JSON into our own small types rather than async-stripe's generated ones, which
//! follow a newer API version than the one we pin.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use stripe_client_core::{IdempotencyKey, RequestBuilder, RequestStrategy, StripeMethod};

use super::plans::{PlanId, SyncedPlan};
use super::transport::{Transport, TransportError};
use crate::config::StripeConfig;

#[derive(Debug, thiserror::Error)]
pub enum StripeCallError {
    #[error("Stripe refused the request: {message}")]
    Refused { status: u16, message: String },
    #[error("Stripe could not be reached: {0}")]
    Unavailable(String),
    #[error("unexpected answer from Stripe: {0}")]
    Unexpected(String),
}

#[derive(Clone)]
pub struct StripeApi {
    client: Transport,
    plan_key: String,
    operation_lease: chrono::Duration,
}

impl StripeApi {
    pub fn new(config: &StripeConfig) -> anyhow::Result<Self> {
        let base = config
            .api_base
            .as_deref()
            .unwrap_or("https://api.stripe.com/");
        let base = if base.ends_with('/') {
            base.to_owned()
        } else {
            format!("{base}/")
        };
        Ok(Self {
            client: Transport::new(config.secret_key.expose(), &base, config.timeout)?,
            plan_key: config.plan_key.clone(),
            operation_lease: chrono::Duration::from_std(config.operation_lease)?,
        })
    }

    /// How long the request running a billing operation holds it ([`super::operations`]).
    pub fn operation_lease(&self) -> chrono::Duration {
        self.operation_lease
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: StripeMethod,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<String>,
    ) -> Result<T, StripeCallError> {
        let mut request = RequestBuilder::new(method, path);
        if !form.is_empty() {
            // Stripe's form encoding: flat keys such as `items[0][plan]`, one value each.
            let fields: std::collections::BTreeMap<&str, &str> = form
                .iter()
                .map(|(key, value)| (*key, value.as_str()))
                .collect();
            request = match method {
                StripeMethod::Get => request.query(&fields),
                _ => request.form(&fields),
            };
        }
        let mut request = request.customize::<miniserde::json::Value>();
        if let Some(key) = idempotency_key {
            let key =
                IdempotencyKey::new(key).map_err(|e| StripeCallError::Unexpected(e.to_string()))?;
            request = request.request_strategy(RequestStrategy::Idempotent(key));
        }
        let value = request.send(&self.client).await.map_err(|err| match err {
            TransportError::Status { status, body } => StripeCallError::Refused {
                status,
                message: serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|error| error["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or_default(),
            },
            TransportError::Unreachable(why) => StripeCallError::Unavailable(why),
            TransportError::Unreadable(why) => StripeCallError::Unexpected(why),
        })?;
        let json = miniserde::json::to_string(&value);
        serde_json::from_str(&json).map_err(|err| StripeCallError::Unexpected(err.to_string()))
    }

    /// A call answering a subscription, read as Stripe documents it (see
    /// [`Subscription::read_as_documented`]).
    async fn call_subscription(
        &self,
        method: StripeMethod,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<String>,
    ) -> Result<Subscription, StripeCallError> {
        let subscription: Subscription = self.call(method, path, form, idempotency_key).await?;
        Ok(subscription.read_as_documented(Utc::now()))
    }

    /// Creates the workspace's customer; the key makes retries create it once.
    pub async fn create_customer(
        &self,
        workspace_id: uuid::Uuid,
        email: &str,
    ) -> Result<String, StripeCallError> {
        let form = [
            ("email", email.to_owned()),
            (WORKSPACE_METADATA, workspace_id.to_string()),
        ];
        let customer: Object = self
            .call(
                StripeMethod::Post,
                "/customers",
                &form,
                Some(format!("customer-{workspace_id}")),
            )
            .await?;
        Ok(customer.id)
    }

    /// Deletes a customer (one made twice for a workspace, the copy not recorded).
    pub async fn delete_customer(&self, customer: &str) -> Result<(), StripeCallError> {
        let path = format!("/customers/{customer}");
        let _: Object = self.call(StripeMethod::Delete, &path, &[], None).await?;
        Ok(())
    }

    /// Sets fields of the customer (Stripe's form keys).
    async fn update_customer(
        &self,
        customer: &str,
        form: &[(&str, String)],
    ) -> Result<(), StripeCallError> {
        let _: Object = self
            .call(
                StripeMethod::Post,
                &format!("/customers/{customer}"),
                form,
                None,
            )
            .await?;
        Ok(())
    }

    pub async fn update_customer_email(
        &self,
        customer: &str,
        email: &str,
    ) -> Result<(), StripeCallError> {
        self.update_customer(customer, &[("email", email.to_owned())])
            .await
    }

    /// Writes billing details onto the customer: the email given (else `owner_email`),
    /// and the company name and address when set; a tax id replaces the customer's others.
    pub async fn update_customer_details(
        &self,
        customer: &str,
        details: &super::details::BillingDetails,
        owner_email: &str,
    ) -> Result<(), StripeCallError> {
        let mut form = vec![(
            "email",
            details
                .email
                .clone()
                .unwrap_or_else(|| owner_email.to_owned()),
        )];
        if let Some(name) = &details.company_name {
            form.push(("name", name.clone()));
        }
        if let Some(address) = &details.address {
            form.push(("address[line1]", address.line1.clone()));
            form.push(("address[city]", address.city.clone()));
            form.push(("address[postal_code]", address.postal_code.clone()));
            form.push(("address[country]", address.country.clone()));
            if let Some(line2) = &address.line2 {
                form.push(("address[line2]", line2.clone()));
            }
            if let Some(state) = &address.state {
                form.push(("address[state]", state.clone()));
            }
        }
        self.update_customer(customer, &form).await?;
        let Some(tax_id) = &details.tax_id else {
            return Ok(());
        };
        let path = format!("/customers/{customer}/tax_ids");
        let existing: List<StripeTaxId> = self.call(StripeMethod::Get, &path, &[], None).await?;
        if existing
            .data
            .iter()
            .any(|t| t.kind == tax_id.kind && t.value == tax_id.value)
        {
            return Ok(());
        }
        // Added first, so a value Stripe refuses leaves the old one in place.
        let form = [
            ("type", tax_id.kind.clone()),
            ("value", tax_id.value.clone()),
        ];
        let _: Object = self.call(StripeMethod::Post, &path, &form, None).await?;
        for old in existing.data {
            let _: Object = self
                .call(
                    StripeMethod::Delete,
                    &format!("{path}/{}", old.id),
                    &[],
                    None,
                )
                .await?;
        }
        Ok(())
    }

    pub async fn create_setup_intent(&self, customer: &str) -> Result<String, StripeCallError> {
        let form = [
            ("customer", customer.to_owned()),
            ("usage", "off_session".to_owned()),
        ];
        let intent: SetupIntent = self
            .call(StripeMethod::Post, "/setup_intents", &form, None)
            .await?;
        Ok(intent.client_secret)
    }

    pub async fn payment_methods(
        &self,
        customer: &str,
    ) -> Result<Vec<PaymentMethod>, StripeCallError> {
        // Page by page (Stripe's default page holds 10): every card, or an error.
        const MAX_PAGES: usize = 10;
        let mut cards: Vec<PaymentMethod> = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut query = vec![
                ("customer", customer.to_owned()),
                ("type", "card".to_owned()),
                ("limit", "100".to_owned()),
            ];
            if let Some(last) = cards.last() {
                query.push(("starting_after", last.id.clone()));
            }
            let page: List<PaymentMethod> = self
                .call(StripeMethod::Get, "/payment_methods", &query, None)
                .await?;
            let more = page.has_more && !page.data.is_empty();
            cards.extend(page.data);
            if !more {
                return Ok(cards);
            }
        }
        Err(StripeCallError::Unexpected(format!(
            "the customer has more than {} cards",
            MAX_PAGES * 100
        )))
    }

    pub async fn payment_method(&self, id: &str) -> Result<PaymentMethod, StripeCallError> {
        self.call(
            StripeMethod::Get,
            &format!("/payment_methods/{id}"),
            &[],
            None,
        )
        .await
    }

    /// Takes a card off its customer.
    pub async fn detach_payment_method(&self, id: &str) -> Result<(), StripeCallError> {
        let _: Object = self
            .call(
                StripeMethod::Post,
                &format!("/payment_methods/{id}/detach"),
                &[],
                None,
            )
            .await?;
        Ok(())
    }

    /// The customer's cards and its default, as Stripe has them now.
    pub async fn cards(&self, customer: &str) -> Result<Cards, StripeCallError> {
        let (cards, default) = tokio::try_join!(
            self.payment_methods(customer),
            self.default_payment_method(customer)
        )?;
        Ok(Cards { cards, default })
    }

    pub async fn default_payment_method(
        &self,
        customer: &str,
    ) -> Result<Option<String>, StripeCallError> {
        let customer: Customer = self
            .call(
                StripeMethod::Get,
                &format!("/customers/{customer}"),
                &[],
                None,
            )
            .await?;
        Ok(customer
            .invoice_settings
            .and_then(|s| s.default_payment_method))
    }

    pub async fn set_default_payment_method(
        &self,
        customer: &str,
        payment_method: &str,
    ) -> Result<(), StripeCallError> {
        let form = [(
            "invoice_settings[default_payment_method]",
            payment_method.to_owned(),
        )];
        self.update_customer(customer, &form).await
    }

    /// Our plans as Stripe has them: recurring prices (plan objects) whose product names
    /// the plan in its metadata, the newest per plan, with limits from the same metadata
    /// (`messages`, `sms`, `agents`, `phone_numbers`; defaults where missing).
    pub async fn plans(&self) -> Result<Vec<SyncedPlan>, StripeCallError> {
        let query = [
            ("active", "true".to_owned()),
            ("limit", "100".to_owned()),
            ("expand[]", "data.product".to_owned()),
        ];
        let mut prices: Vec<StripePlan> = Vec::new();
        loop {
            let mut query = query.to_vec();
            if let Some(last) = prices.last() {
                query.push(("starting_after", last.id.clone()));
            }
            let page: List<StripePlan> =
                self.call(StripeMethod::Get, "/plans", &query, None).await?;
            let more = page.has_more && !page.data.is_empty();
            prices.extend(page.data);
            if !more {
                break;
            }
        }
        let mut newest: Vec<(i64, SyncedPlan)> = Vec::new();
        let mut phone_prices: Vec<(i64, PlanId, String)> = Vec::new();
        for price in prices {
            let metadata = price.product.get("metadata");
            let named = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str);
            let Some(id) = named(&self.plan_key).and_then(PlanId::from_db) else {
                continue;
            };
            let (item_key, phone_number) = PHONE_NUMBER_ITEM;
            if price.metadata.get(item_key).and_then(Value::as_str) == Some(phone_number) {
                match phone_prices.iter_mut().find(|(_, plan, _)| *plan == id) {
                    Some(entry) if entry.0 < price.created => {
                        *entry = (price.created, id, price.id);
                    }
                    Some(_) => {}
                    None => phone_prices.push((price.created, id, price.id)),
                }
                continue;
            }
            let defaults = super::plans::default_plan(id);
            let number = |key: &str, default: i32| {
                named(key).and_then(|v| v.parse().ok()).unwrap_or(default)
            };
            let name = price.product.get("name").and_then(Value::as_str);
            let plan = SyncedPlan {
                phone_number_price_id: None,
                price_id: price.id,
                plan: super::plans::Plan {
                    id,
                    name: name.map_or(defaults.name.clone(), str::to_owned),
                    monthly_price_cents: i32::try_from(price.amount)
                        .unwrap_or(defaults.monthly_price_cents),
                    limits: super::plans::Limits {
                        messages: number("messages", defaults.limits.messages),
                        sms: number("sms", defaults.limits.sms),
                        agents: number("agents", defaults.limits.agents),
                        phone_numbers: number("phone_numbers", defaults.limits.phone_numbers),
                    },
                },
            };
            match newest.iter_mut().find(|(_, seen)| seen.plan.id == id) {
                Some(entry) if entry.0 < price.created => *entry = (price.created, plan),
                Some(_) => {}
                None => newest.push((price.created, plan)),
            }
        }
        Ok(newest
            .into_iter()
            .map(|(_, mut plan)| {
                plan.phone_number_price_id = phone_prices
                    .iter()
                    .find(|(_, id, _)| *id == plan.plan.id)
                    .map(|(_, _, price)| price.clone());
                plan
            })
            .collect())
    }

    /// A subscription item by id, or `None` once it is gone.
    pub async fn subscription_item(
        &self,
        id: &str,
    ) -> Result<Option<SubscriptionItem>, StripeCallError> {
        let path = format!("/subscription_items/{id}");
        match self.call(StripeMethod::Get, &path, &[], None).await {
            Ok(item) => Ok(Some(item)),
            Err(StripeCallError::Refused { status: 404, .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Adds an item of `price` to the subscription (Stripe prorates by default); the key
    /// makes a retry add it once.
    pub async fn add_subscription_item(
        &self,
        subscription: &str,
        price: &str,
        quantity: i32,
        idempotency_key: String,
    ) -> Result<String, StripeCallError> {
        let form = [
            ("subscription", subscription.to_owned()),
            ("plan", price.to_owned()),
            ("quantity", quantity.to_string()),
        ];
        let item: Object = self
            .call(
                StripeMethod::Post,
                "/subscription_items",
                &form,
                Some(idempotency_key),
            )
            .await?;
        Ok(item.id)
    }

    /// Sets an item's quantity (Stripe prorates by default); the key makes a retry set it
    /// once.
    pub async fn set_subscription_item_quantity(
        &self,
        id: &str,
        quantity: i32,
        idempotency_key: String,
    ) -> Result<(), StripeCallError> {
        let form = [("quantity", quantity.to_string())];
        let path = format!("/subscription_items/{id}");
        let _: Object = self
            .call(StripeMethod::Post, &path, &form, Some(idempotency_key))
            .await?;
        Ok(())
    }

    /// Takes an item off its subscription (Stripe prorates by default); one already gone
    /// is fine.
    pub async fn remove_subscription_item(&self, id: &str) -> Result<(), StripeCallError> {
        let path = format!("/subscription_items/{id}");
        match self
            .call::<Object>(StripeMethod::Delete, &path, &[], None)
            .await
        {
            Ok(_) | Err(StripeCallError::Refused { status: 404, .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Starts a subscription; during a trial it starts billing when the trial ends. A first
    /// payment the card cannot make at once (authentication needed, or declined) leaves the
    /// subscription `incomplete` with its invoice's payment intent, which the customer
    /// completes in the browser (`payment_behavior=allow_incomplete`: Stripe's documented
    /// way to handle SCA on the first invoice; `default_incomplete`, which does not attempt
    /// the charge at all, is refused by the local fake).
    ///
    /// It carries the workspace and the operation that made it in its metadata, so the
    /// operation's retry, and reconciliation, find it in the customer's list whatever
    /// happened to the answer.
    pub async fn create_subscription(
        &self,
        customer: &str,
        price: &str,
        trial_end: Option<DateTime<Utc>>,
        made_by: &MadeBy,
    ) -> Result<Subscription, StripeCallError> {
        let mut form = vec![
            ("customer", customer.to_owned()),
            ("items[0][plan]", price.to_owned()),
            ("payment_behavior", "allow_incomplete".to_owned()),
            ("expand[]", "latest_invoice.payment_intent".to_owned()),
            (WORKSPACE_METADATA, made_by.workspace_id.to_string()),
            (OPERATION_METADATA, made_by.operation_id.to_string()),
        ];
        if let Some(end) = trial_end {
            form.push(("trial_end", end.timestamp().to_string()));
        }
        self.call_subscription(
            StripeMethod::Post,
            "/subscriptions",
            &form,
            Some(made_by.idempotency_key.clone()),
        )
        .await
    }

    /// The customer's subscriptions that are not over (canceled or expired), as Stripe has
    /// them now, each with its latest invoice's payment intent.
    pub async fn subscriptions(
        &self,
        customer: &str,
    ) -> Result<Vec<Subscription>, StripeCallError> {
        let query = [
            ("customer", customer.to_owned()),
            ("status", "all".to_owned()),
            ("limit", "100".to_owned()),
            ("expand[]", "data.latest_invoice.payment_intent".to_owned()),
        ];
        let list: List<Subscription> = self
            .call(StripeMethod::Get, "/subscriptions", &query, None)
            .await?;
        // Deciding from part of the list could miss a live one: refuse rather than guess.
        if list.has_more {
            return Err(StripeCallError::Unexpected(
                "the customer has more than 100 subscriptions".into(),
            ));
        }
        let now = Utc::now();
        Ok(list
            .data
            .into_iter()
            .map(|subscription| subscription.read_as_documented(now))
            .filter(|subscription| {
                !matches!(
                    subscription.status.as_str(),
                    "canceled" | "incomplete_expired"
                )
            })
            .collect())
    }

    pub async fn subscription(&self, id: &str) -> Result<Subscription, StripeCallError> {
        self.call_subscription(
            StripeMethod::Get,
            &format!("/subscriptions/{id}"),
            &[],
            None,
        )
        .await
    }

    /// Moves the subscription's plan item (not `phone_item`, the phone numbers' item) to
    /// another price. Stripe prorates by default (`proration_behavior=create_prorations`),
    /// so we leave that parameter out (the local fake rejects it).
    pub async fn change_plan(
        &self,
        subscription: &Subscription,
        phone_item: Option<&str>,
        price: &str,
    ) -> Result<Subscription, StripeCallError> {
        let item = subscription
            .plan_item(phone_item)
            .map(|item| item.id.clone())
            .ok_or_else(|| StripeCallError::Unexpected("subscription without items".into()))?;
        let form = [
            ("items[0][id]", item),
            ("items[0][plan]", price.to_owned()),
            ("cancel_at_period_end", "false".to_owned()),
        ];
        self.call_subscription(
            StripeMethod::Post,
            &format!("/subscriptions/{}", subscription.id),
            &form,
            None,
        )
        .await
    }

    pub async fn set_cancel_at_period_end(
        &self,
        id: &str,
        cancel: bool,
    ) -> Result<Subscription, StripeCallError> {
        let form = [("cancel_at_period_end", cancel.to_string())];
        self.call_subscription(
            StripeMethod::Post,
            &format!("/subscriptions/{id}"),
            &form,
            None,
        )
        .await
    }

    /// Voids the first invoice of a subscription still waiting on it: `false` when Stripe
    /// refuses because it is no longer open (paid just now, for one), so the caller re-reads.
    pub async fn void_first_payment(
        &self,
        subscription: &Subscription,
    ) -> Result<bool, StripeCallError> {
        let Some(invoice) = subscription.latest_invoice_id() else {
            return Ok(true);
        };
        let voided: Result<Object, _> = self
            .call(
                StripeMethod::Post,
                &format!("/invoices/{invoice}/void"),
                &[],
                None,
            )
            .await;
        match voided {
            Ok(_) => Ok(true),
            Err(StripeCallError::Refused { status: 400, .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Ends a duplicate subscription now: a first payment still waiting is voided, one paid
    /// is refunded in full first (the customer never meant to buy twice; a lost answer is
    /// retried safely, the refund's key being its payment's), then it is cancelled. A
    /// waiting payment Stripe refuses to void was paid a moment ago: it is left for the next
    /// round to weigh again ([`Ended::Left`]).
    pub async fn end_duplicate(
        &self,
        subscription: &Subscription,
    ) -> Result<Ended, StripeCallError> {
        if subscription.status == "incomplete" {
            if !self.void_first_payment(subscription).await? {
                return Ok(Ended::Left);
            }
            self.cancel_now(&subscription.id).await?;
            return Ok(Ended::Voided);
        }
        let refunded = match subscription
            .latest_payment_intent()
            .filter(|_| subscription.latest_invoice_paid())
        {
            Some(payment) => {
                let form = [("payment_intent", payment.to_owned())];
                let key = Some(format!("refund-{payment}"));
                let _: Object = self
                    .call(StripeMethod::Post, "/refunds", &form, key)
                    .await?;
                Some(payment.to_owned())
            }
            None => None,
        };
        self.cancel_now(&subscription.id).await?;
        Ok(Ended::Cancelled { refunded })
    }

    /// Cancels a subscription now; one already gone is no error.
    pub async fn cancel_now(&self, id: &str) -> Result<(), StripeCallError> {
        let cancelled: Result<Object, _> = self
            .call(
                StripeMethod::Delete,
                &format!("/subscriptions/{id}"),
                &[],
                None,
            )
            .await;
        match cancelled {
            Ok(_) | Err(StripeCallError::Refused { status: 404, .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }

    pub async fn invoices(
        &self,
        customer: &str,
        limit: i64,
    ) -> Result<Vec<Invoice>, StripeCallError> {
        let query = [
            ("customer", customer.to_owned()),
            ("limit", limit.to_string()),
        ];
        let list: List<Invoice> = self
            .call(StripeMethod::Get, "/invoices", &query, None)
            .await?;
        Ok(list.data)
    }
}

#[derive(Deserialize, Clone, Debug)]
pub struct Object {
    pub id: String,
}

#[derive(Deserialize, Clone, Debug)]
pub struct List<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
}

#[derive(Deserialize)]
struct SetupIntent {
    client_secret: String,
}

#[derive(Deserialize)]
struct StripeTaxId {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Deserialize)]
struct Customer {
    invoice_settings: Option<InvoiceSettings>,
}

#[derive(Deserialize)]
struct InvoiceSettings {
    default_payment_method: Option<String>,
}

#[derive(Deserialize, Clone, Debug)]
pub struct PaymentMethod {
    pub id: String,
    pub customer: Option<String>,
    pub card: Option<Card>,
    #[serde(default)]
    pub created: i64,
}

#[derive(Deserialize, Clone, Debug, Default)]
pub struct Card {
    #[serde(default)]
    pub brand: String,
    #[serde(default)]
    pub last4: String,
    #[serde(default, deserialize_with = "lenient_i32")]
    pub exp_month: i32,
    #[serde(default, deserialize_with = "lenient_i32")]
    pub exp_year: i32,
}

/// A customer's saved cards and which one invoices are charged to.
#[derive(Clone, Debug)]
pub struct Cards {
    pub cards: Vec<PaymentMethod>,
    pub default: Option<String>,
}

/// A number Stripe sends as a JSON number; an updated object in the local fake holds it as
/// the form's text, which is read the same.
fn lenient_i32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// A quantity, which the local fake sends as text once it was changed.
fn lenient_quantity<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

#[derive(Deserialize)]
struct StripePlan {
    id: String,
    #[serde(default)]
    amount: i64,
    #[serde(default)]
    created: i64,
    product: Value,
    #[serde(default)]
    metadata: Value,
}

/// The price metadata that marks a plan product's per-phone-number price
/// (`item=phone_number`); the plan's own price has no `item`.
pub const PHONE_NUMBER_ITEM: (&str, &str) = ("item", "phone_number");

/// How a duplicate subscription was ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Its first payment never came: voided, and the subscription cancelled.
    Voided,
    /// Cancelled; its paid invoice refunded (the payment intent), if it had one.
    Cancelled { refunded: Option<String> },
    /// Its first payment came just now: left for the next round to weigh.
    Left,
}

/// Who makes a subscription: the workspace and billing operation its metadata names, and
/// the operation attempt's idempotency key.
pub struct MadeBy {
    pub workspace_id: uuid::Uuid,
    pub operation_id: uuid::Uuid,
    pub idempotency_key: String,
}

/// The metadata naming the workspace a subscription (or customer) is for.
const WORKSPACE_METADATA: &str = "metadata[workspace_id]";
/// The metadata naming the billing operation that made a subscription.
const OPERATION_METADATA: &str = "metadata[linkai_operation]";

#[derive(Deserialize, Clone, Debug)]
pub struct Subscription {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub metadata: std::collections::HashMap<String, String>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    #[serde(default)]
    pub trial_end: Option<i64>,
    pub items: List<SubscriptionItem>,
    /// The latest invoice: its id, or the invoice with its payment intent when expanded.
    #[serde(default)]
    pub latest_invoice: Option<Value>,
}

/// What a first payment that did not go through needs from the customer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(tag = "needs", rename_all = "snake_case")]
pub enum PendingPayment {
    /// The card needs authentication (3-D Secure): confirm the payment intent with this
    /// client secret in the browser.
    RequiresAction { client_secret: String },
    /// The card was declined: Stripe's error code (`card_declined`), the issuer's reason
    /// when Stripe has one (`insufficient_funds`), and Stripe's message for people.
    Declined {
        code: String,
        decline_code: Option<String>,
        message: String,
    },
}

/// The price (plan) an item bills, with its metadata.
#[derive(Deserialize, Clone, Debug)]
pub struct ItemPlan {
    pub id: String,
    /// Absent or null on some prices (Stripe's own fixtures have both).
    #[serde(default)]
    pub metadata: Option<std::collections::HashMap<String, Value>>,
}

#[derive(Deserialize, Clone, Debug)]
pub struct SubscriptionItem {
    pub id: String,
    pub plan: Option<ItemPlan>,
    #[serde(default, deserialize_with = "lenient_quantity")]
    pub quantity: Option<i64>,
}

impl SubscriptionItem {
    /// Whether its price is marked as the per-number price ([`PHONE_NUMBER_ITEM`]).
    pub fn bills_phone_numbers(&self) -> bool {
        let (key, value) = PHONE_NUMBER_ITEM;
        self.plan
            .as_ref()
            .and_then(|plan| plan.metadata.as_ref()?.get(key))
            .and_then(Value::as_str)
            == Some(value)
    }
}

impl Subscription {
    /// The local fake leaves a subscription with a trial `incomplete` (it never writes
    /// `trialing`), where Stripe makes it `trialing` with a paid zero invoice; with the
    /// trial still running and no invoice, that is what it is.
    pub(super) fn read_as_documented(mut self, now: DateTime<Utc>) -> Self {
        let in_trial = self.trial_end.is_some_and(|end| end > now.timestamp());
        if self.status == "incomplete" && in_trial && self.latest_invoice.is_none() {
            self.status = "trialing".to_owned();
        }
        self
    }

    /// For a subscription waiting on its first payment, what the customer must do, read
    /// from the expanded latest invoice's payment intent.
    pub fn pending_payment(&self) -> Option<PendingPayment> {
        if self.status != "incomplete" {
            return None;
        }
        let intent = self.latest_invoice.as_ref()?.get("payment_intent")?;
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
        match intent.get("status").and_then(Value::as_str)? {
            "requires_action" | "requires_confirmation" => Some(PendingPayment::RequiresAction {
                client_secret: text(intent.get("client_secret"))?,
            }),
            "requires_payment_method" => {
                let error = intent.get("last_payment_error");
                Some(PendingPayment::Declined {
                    code: text(error.and_then(|e| e.get("code")))
                        .unwrap_or_else(|| "card_declined".to_owned()),
                    decline_code: text(error.and_then(|e| e.get("decline_code"))),
                    message: text(error.and_then(|e| e.get("message")))
                        .unwrap_or_else(|| "The card was declined.".to_owned()),
                })
            }
            _ => None,
        }
    }

    /// Its latest invoice's id, expanded or not.
    pub fn latest_invoice_id(&self) -> Option<&str> {
        let invoice = self.latest_invoice.as_ref()?;
        invoice
            .as_str()
            .or_else(|| invoice.get("id").and_then(Value::as_str))
    }

    /// Whether its latest invoice (expanded) was paid with money.
    pub fn latest_invoice_paid(&self) -> bool {
        let Some(invoice) = self.latest_invoice.as_ref() else {
            return false;
        };
        invoice.get("status").and_then(Value::as_str) == Some("paid")
            && invoice
                .get("amount_paid")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                > 0
    }

    /// The payment intent of its latest invoice (expanded), if it has one.
    pub fn latest_payment_intent(&self) -> Option<&str> {
        let intent = self.latest_invoice.as_ref()?.get("payment_intent")?;
        intent
            .as_str()
            .or_else(|| intent.get("id").and_then(Value::as_str))
    }

    /// Whether its metadata names `workspace_id` (every subscription we make does).
    pub fn is_for(&self, workspace_id: uuid::Uuid) -> bool {
        self.metadata.get("workspace_id").map(String::as_str) == Some(&workspace_id.to_string())
    }

    /// The billing operation that made it, if one of ours did.
    pub fn operation(&self) -> Option<uuid::Uuid> {
        let id = self.metadata.get("linkai_operation")?;
        uuid::Uuid::parse_str(id).ok()
    }

    /// The item billing the plan: the first one that is neither `phone_item`, the item
    /// recorded for the phone numbers ([`super::phone_numbers`]), nor at a per-number price.
    pub fn plan_item(&self, phone_item: Option<&str>) -> Option<&SubscriptionItem> {
        self.items
            .data
            .iter()
            .find(|item| Some(item.id.as_str()) != phone_item && !item.bills_phone_numbers())
    }

    /// The price (plan) it bills.
    pub fn price_id(&self, phone_item: Option<&str>) -> Option<&str> {
        self.plan_item(phone_item)?
            .plan
            .as_ref()
            .map(|plan| plan.id.as_str())
    }
}

#[derive(Deserialize, Clone, Debug)]
pub struct Invoice {
    pub id: String,
    pub number: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub amount_due: i64,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub created: i64,
    pub hosted_invoice_url: Option<String>,
    #[serde(default)]
    pub invoice_pdf: Option<String>,
}

#[cfg(test)]
#[path = "contract.rs"]
mod contract;
