//! Billing over GraphQL: `Workspace.billing` and the billing mutations (Owner and Admin).
//! Without `STRIPE_SECRET_KEY` they answer `BILLING_NOT_CONFIGURED`; plans and trials
//! still work.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::Utc;
use uuid::Uuid;

use super::account::{self, BillingAccountRow};
use super::details::{self, BillingDetails};
use super::manage;
use super::plans::{Limits, Plan, PlanId};
use super::stripe::{PendingPayment, StripeApi};
use super::BillingStatus;
use crate::audit::Trail;
use crate::db::page::Page;
use crate::db::Db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::graphql::context::{parse_id, request};
use crate::graphql::guard::{least, membership, require_role, RoleGuard};
use crate::graphql::pagination::PageOf;
use crate::graphql::scalars::Timestamp;
use crate::roles::Action;
use crate::workspaces::model::WorkspaceRow;

/// Where a workspace stands with billing (docs/billing.md's billing status table).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(
    name = "BillingStatus",
    remote = "BillingStatus",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum GqlBillingStatus {
    /// In the free trial, with full access.
    Trialing,
    /// A plan is paid for.
    Active,
    /// A plan was chosen but its first payment is not complete: the card needs
    /// authentication (`selectPlan`'s `requiresAction`) or was declined. The workspace keeps
    /// its state before (writable in the trial, read-only after it) until Stripe says paid.
    Incomplete,
    /// The last payment failed; Stripe is retrying. Everything keeps working.
    PastDue,
    /// Stripe's retries ran out with the invoice unpaid; the workspace is read-only until a
    /// payment goes through.
    Unpaid,
    /// The subscription was paused (the trial ended without a payment method); the
    /// workspace is read-only until it resumes.
    Paused,
    /// The subscription ended; the workspace is read-only.
    Canceled,
    /// The trial ended with no plan; the workspace is read-only until a plan is chosen.
    TrialExpired,
}

/// A paid plan.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(
    name = "PlanId",
    remote = "PlanId",
    rename_items = "SCREAMING_SNAKE_CASE"
)]
pub enum GqlPlanId {
    /// For a first agent in production.
    Starter,
    /// For teams running several agents.
    Growth,
    /// For high volume.
    Scale,
}

/// Usage limits per workspace: messages and SMS per billing period, agents and phone
/// numbers in use.
#[derive(SimpleObject, Clone, Copy, Debug)]
#[graphql(name = "Limits")]
pub struct LimitsView {
    /// Messages per billing period.
    pub messages: i32,
    /// SMS per billing period.
    pub sms: i32,
    /// Agents at once.
    pub agents: i32,
    /// Phone numbers at once.
    pub phone_numbers: i32,
}

impl From<Limits> for LimitsView {
    fn from(limits: Limits) -> Self {
        let Limits {
            messages,
            sms,
            agents,
            phone_numbers,
        } = limits;
        LimitsView {
            messages,
            sms,
            agents,
            phone_numbers,
        }
    }
}

/// A plan with its price and limits.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Plan")]
pub struct PlanView {
    /// Which plan.
    pub id: GqlPlanId,
    /// Display name.
    pub name: String,
    /// Price per month, in cents (USD).
    pub monthly_price_cents: i32,
    /// What a workspace on this plan may use.
    pub limits: LimitsView,
}

impl From<Plan> for PlanView {
    fn from(plan: Plan) -> Self {
        PlanView {
            id: plan.id.into(),
            name: plan.name,
            monthly_price_cents: plan.monthly_price_cents,
            limits: plan.limits.into(),
        }
    }
}

#[derive(Default)]
pub struct BillingQuery;

/// Billing queries.
#[Object]
impl BillingQuery {
    /// The plans a workspace can choose, with prices and limits.
    async fn plans(&self, ctx: &Context<'_>) -> ApiResult<Option<Vec<PlanView>>> {
        let mut conn = request(ctx).db.conn().await?;
        let plans = super::plans::all(&mut conn).await?;
        Ok(Some(plans.into_iter().map(PlanView::from).collect()))
    }
}

fn stripe<'a>(ctx: &Context<'a>) -> ApiResult<&'a StripeApi> {
    request(ctx).stripe.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::BillingNotConfigured,
            "Billing is not configured on this server (no STRIPE_SECRET_KEY).",
        )
    })
}

/// A saved card.
#[derive(SimpleObject)]
pub struct PaymentMethod {
    /// Stripe payment method id.
    id: String,
    /// Card brand, e.g. visa.
    brand: String,
    /// Last four digits.
    last4: String,
    /// Expiry month.
    exp_month: i32,
    /// Expiry year.
    exp_year: i32,
    /// Whether invoices are charged to it.
    is_default: bool,
    /// Past its expiry month: payments with it will fail.
    expired: bool,
    /// Expires within 30 days: add another card before it does.
    expires_soon: bool,
}

/// An invoice, as Stripe has it.
#[derive(SimpleObject)]
pub struct Invoice {
    /// Stripe invoice id.
    id: String,
    /// Invoice number, once finalized.
    number: Option<String>,
    /// Where the invoice stands, as Stripe says.
    status: InvoiceStatus,
    /// Amount due, in the currency's smallest unit.
    amount_due_cents: i32,
    /// ISO currency code.
    currency: String,
    /// When it was created.
    created_at: Timestamp,
    /// Stripe's page to view and pay it.
    hosted_invoice_url: Option<String>,
    /// Stripe's PDF of it.
    pdf_url: Option<String>,
}

/// Where an invoice stands (Stripe's invoice statuses).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvoiceStatus {
    /// Being prepared; not yet sent or charged.
    Draft,
    /// Finalized and waiting for payment.
    Open,
    /// Paid in full.
    Paid,
    /// Stripe gave up collecting it.
    Uncollectible,
    /// Cancelled; nothing is owed.
    Void,
}

impl InvoiceStatus {
    /// Stripe's status text. Stripe documents exactly these five; anything else (a status
    /// added later) is shown as OPEN, the one that still asks for attention, and logged.
    fn from_stripe(status: &str) -> Self {
        match status {
            "draft" => InvoiceStatus::Draft,
            "open" => InvoiceStatus::Open,
            "paid" => InvoiceStatus::Paid,
            "uncollectible" => InvoiceStatus::Uncollectible,
            "void" => InvoiceStatus::Void,
            other => {
                tracing::warn!(status = other, "unknown Stripe invoice status");
                InvoiceStatus::Open
            }
        }
    }
}

/// Invoice cursors: the Stripe id, opaque to clients like every other cursor.
mod invoice_cursor {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use crate::error::{ApiError, ApiResult};

    pub fn encode(id: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("invoice:{id}"))
    }

    pub fn decode(raw: &str) -> ApiResult<String> {
        let invalid = || ApiError::bad_input("`after` is not a cursor from this list.");
        let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        text.strip_prefix("invoice:")
            .filter(|id| !id.is_empty() && id.len() <= 255)
            .map(str::to_owned)
            .ok_or_else(invalid)
    }
}

/// What `selectPlan` did: the billing after it, and, when the first payment did not go
/// through, what the customer must do.
#[derive(SimpleObject)]
pub struct PlanSelection {
    /// The workspace's billing now (`status` INCOMPLETE while the first payment waits).
    billing: Billing,
    /// Set when the card needs authentication (3-D Secure): confirm the payment in the
    /// browser with Stripe.js (`stripe.confirmCardPayment(clientSecret)`). The workspace
    /// keeps its state before until Stripe reports the payment made.
    requires_action: Option<PaymentAction>,
    /// Set when the card was declined: show the reason, add another card and choose the
    /// plan again.
    declined: Option<PaymentDeclined>,
}

/// A payment the customer completes in the browser.
#[derive(SimpleObject)]
pub struct PaymentAction {
    /// The payment intent's client secret, for Stripe.js.
    client_secret: String,
}

/// Why a card was declined, as Stripe says.
#[derive(SimpleObject)]
pub struct PaymentDeclined {
    /// Stripe's error code, e.g. `card_declined`.
    code: String,
    /// The issuer's reason when Stripe has one, e.g. `insufficient_funds`.
    decline_code: Option<String>,
    /// Stripe's message, meant for the customer.
    message: String,
}

/// The details invoices carry, as set with `updateBillingDetails`.
#[derive(SimpleObject)]
#[graphql(name = "BillingDetails")]
pub struct BillingDetailsView {
    /// Where invoices and billing emails go: the one set, else the Owner's address.
    email: Option<String>,
    /// Whether `email` was set (false: it follows the Owner).
    email_set: bool,
    /// The company invoices are made out to.
    company_name: Option<String>,
    /// The postal address on invoices.
    address: Option<AddressView>,
    /// The tax id on invoices.
    tax_id: Option<TaxIdView>,
}

/// A postal address.
#[derive(SimpleObject, InputObject)]
#[graphql(name = "Address", input_name = "AddressInput")]
pub struct AddressView {
    /// First line (street and number).
    line1: String,
    /// Second line, if any.
    line2: Option<String>,
    /// City.
    city: String,
    /// Postal code.
    postal_code: String,
    /// State or region, if any.
    state: Option<String>,
    /// Two-letter ISO 3166-1 country code, e.g. DE.
    country: String,
}

/// A tax id, as Stripe types it.
#[derive(SimpleObject, InputObject)]
#[graphql(name = "TaxId", input_name = "TaxIdInput")]
pub struct TaxIdView {
    /// Stripe's tax id type, e.g. `eu_vat`.
    #[graphql(name = "type")]
    kind: String,
    /// The id itself, e.g. DE123456789.
    value: String,
}

/// Billing details to set; fields left out keep their value.
#[derive(InputObject)]
pub struct BillingDetailsInput {
    /// Where invoices and billing emails go (default: the Owner's address, following
    /// ownership).
    email: Option<String>,
    /// The company invoices are made out to.
    company_name: Option<String>,
    /// The postal address on invoices.
    address: Option<AddressView>,
    /// The tax id on invoices (replaces any other).
    tax_id: Option<TaxIdView>,
}

impl BillingDetailsInput {
    /// Parses every field; the first invalid one is a BAD_USER_INPUT.
    fn parse(self) -> ApiResult<BillingDetails> {
        let opt = |raw: Option<String>, field| raw.map(|r| details::text(&r, field)).transpose();
        let address = match self.address {
            Some(a) => Some(details::Address {
                line1: details::text(&a.line1, "address.line1")?,
                line2: opt(a.line2, "address.line2")?,
                city: details::text(&a.city, "address.city")?,
                postal_code: details::text(&a.postal_code, "address.postalCode")?,
                state: opt(a.state, "address.state")?,
                country: details::country(&a.country)?,
            }),
            None => None,
        };
        Ok(BillingDetails {
            email: self.email.as_deref().map(details::email).transpose()?,
            company_name: opt(self.company_name, "companyName")?,
            address,
            tax_id: self
                .tax_id
                .map(|t| details::tax_id(&t.kind, &t.value))
                .transpose()?,
        })
    }
}

impl BillingDetailsView {
    fn new(details: BillingDetails) -> Self {
        Self {
            email_set: details.email.is_some(),
            email: details.email,
            company_name: details.company_name,
            address: details.address.map(|a| AddressView {
                line1: a.line1,
                line2: a.line2,
                city: a.city,
                postal_code: a.postal_code,
                state: a.state,
                country: a.country,
            }),
            tax_id: details.tax_id.map(|t| TaxIdView {
                kind: t.kind,
                value: t.value,
            }),
        }
    }
}

/// What the frontend's Stripe Elements needs to collect a card.
#[derive(SimpleObject)]
pub struct SetupIntent {
    /// Pass to `stripe.confirmCardSetup`.
    client_secret: String,
}

/// A workspace's billing: plan, trial, subscription, payment methods and invoices.
pub struct Billing {
    workspace: WorkspaceRow,
    account: Option<BillingAccountRow>,
}

/// A workspace's billing: plan, trial, subscription, payment methods and invoices.
#[Object]
impl Billing {
    /// Where the workspace stands with billing.
    async fn status(&self) -> GqlBillingStatus {
        BillingStatus::derive(&self.workspace, Utc::now()).into()
    }

    /// The chosen plan, if any.
    async fn plan(&self, ctx: &Context<'_>) -> ApiResult<Option<PlanView>> {
        let Some(id) = self.workspace.plan.as_deref().and_then(PlanId::from_db) else {
            return Ok(None);
        };
        let mut conn = request(ctx).db.conn().await?;
        Ok(Some(super::plans::find(&mut conn, id).await?.into()))
    }

    /// When the free trial ends (or ended).
    async fn trial_ends_at(&self) -> Option<Timestamp> {
        Some(Timestamp(self.workspace.trial_ends_at))
    }

    /// End of the paid period.
    async fn current_period_end(&self) -> Option<Timestamp> {
        self.account
            .as_ref()
            .and_then(|a| a.current_period_end)
            .map(Timestamp)
    }

    /// Whether the subscription ends at the end of the period.
    async fn cancel_at_period_end(&self) -> bool {
        self.account
            .as_ref()
            .is_some_and(|a| a.cancel_at_period_end)
    }

    /// The details invoices carry (billing email, company, address, tax id), as mirrored:
    /// reading them makes no Stripe call.
    async fn details(&self) -> BillingDetailsView {
        BillingDetailsView::new(BillingDetails::from_column(
            self.account.as_ref().and_then(|a| a.details.as_ref()),
        ))
    }

    /// Saved cards, oldest first, as the workers mirror them from Stripe (a card added with
    /// Stripe.js shows once Stripe's webhook is processed): reading them makes no Stripe
    /// call. `null` with an error only if the database cannot be read.
    async fn payment_methods(&self, ctx: &Context<'_>) -> ApiResult<Option<Vec<PaymentMethod>>> {
        if self.account.is_none() {
            return Ok(Some(Vec::new()));
        }
        let mut conn = request(ctx).db.conn_in(self.workspace.id).await?;
        let now = Utc::now();
        let cards = super::cards::list(&mut conn, self.workspace.id).await?;
        Ok(Some(
            cards
                .into_iter()
                .map(|card| {
                    let expiry = super::card_expiry(card.exp_month, card.exp_year, now);
                    PaymentMethod {
                        is_default: card.is_default,
                        expired: expiry == super::CardExpiry::Expired,
                        expires_soon: expiry == super::CardExpiry::ExpiresSoon,
                        id: card.id,
                        brand: card.brand,
                        last4: card.last4,
                        exp_month: card.exp_month,
                        exp_year: card.exp_year,
                    }
                })
                .collect(),
        ))
    }

    /// Invoices, newest first, as mirrored from Stripe.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn invoices(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor after which the page starts.")] after: Option<String>,
    ) -> ApiResult<PageOf<Invoice>> {
        let page = Page::parse_size(first, after.is_some())?;
        let after = after.as_deref().map(invoice_cursor::decode).transpose()?;
        let mut conn = request(ctx).db.conn_in(self.workspace.id).await?;
        let rows =
            account::invoices_page(&mut conn, self.workspace.id, page.limit(), after.as_deref())
                .await?;
        let total = account::invoices_count(&mut conn, self.workspace.id).await?;
        let invoices = rows
            .into_iter()
            .map(|invoice| Invoice {
                id: invoice.id,
                number: invoice.number,
                status: InvoiceStatus::from_stripe(&invoice.status),
                amount_due_cents: i32::try_from(invoice.amount_due_cents).unwrap_or(i32::MAX),
                currency: invoice.currency,
                created_at: invoice.created_at.into(),
                hosted_invoice_url: invoice.hosted_invoice_url,
                pdf_url: invoice.invoice_pdf,
            })
            .collect();
        Ok(PageOf::from_rows(invoices, &page, total, |invoice| {
            invoice_cursor::encode(&invoice.id)
        }))
    }
}

/// The billing of a workspace the caller may manage.
pub async fn billing_of(ctx: &Context<'_>, workspace_id: Uuid) -> ApiResult<Billing> {
    let mut conn = request(ctx).db.conn_in(workspace_id).await?;
    let workspace = crate::workspaces::model::find_live(&mut conn, workspace_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Workspace"))?;
    let account = account::find(&mut conn, workspace_id).await?;
    Ok(Billing { workspace, account })
}

#[derive(Default)]
pub struct BillingMutation;

/// Billing mutations.
#[Object]
impl BillingMutation {
    /// Starts adding a card: returns the client secret for Stripe Elements.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageBilling, &workspace_id)",
        directive = require_role::apply(least(Action::ManageBilling))
    )]
    async fn create_setup_intent(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
    ) -> ApiResult<SetupIntent> {
        let stripe = stripe(ctx)?;
        let workspace_id = parse_id(&workspace_id)?;
        let db = &request(ctx).db;
        Ok(SetupIntent {
            client_secret: manage::setup_intent(db, stripe, workspace_id).await?,
        })
    }

    /// Makes one of the workspace's saved cards the one invoices are charged to.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageBilling, &workspace_id)",
        directive = require_role::apply(least(Action::ManageBilling))
    )]
    async fn set_default_payment_method(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        payment_method_id: String,
    ) -> ApiResult<Billing> {
        let card = payment_method_id.as_str();
        change(ctx, &workspace_id, async |db, stripe, trail, ws| {
            manage::set_default_card(db, stripe, trail, ws, card).await
        })
        .await
    }

    /// Removes a saved card. The default card a subscription needs can only go when
    /// another card is saved, which then becomes the default; otherwise CONFLICT.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageBilling, &workspace_id)",
        directive = require_role::apply(least(Action::ManageBilling))
    )]
    async fn remove_payment_method(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        payment_method_id: String,
    ) -> ApiResult<Billing> {
        let card = payment_method_id.as_str();
        change(ctx, &workspace_id, async |db, stripe, trail, ws| {
            manage::remove_card(db, stripe, trail, ws, card).await
        })
        .await
    }

    /// Chooses or changes the plan. Needs a default payment method. During the trial the
    /// subscription starts billing when the trial ends (nothing is charged before); after it,
    /// at once, and read-only lifts once that first payment is made. If the card needs
    /// authentication or is declined, the status is INCOMPLETE (the workspace keeps its
    /// state before) and `requiresAction` or `declined` says what to do; choosing again
    /// after adding another card replaces the incomplete subscription. Changing plan prorates.
    ///
    /// One billing change runs at a time per workspace: another one while this runs is
    /// CONFLICT. Send an `idempotencyKey` (any unique string, e.g. a UUID made when the user
    /// clicked) to make retrying safe: a retry after a timeout or SERVICE_UNAVAILABLE with the
    /// same key resumes this change or answers as it did, and never charges twice.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageBilling, &workspace_id)",
        directive = require_role::apply(least(Action::ManageBilling))
    )]
    async fn select_plan(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        plan: GqlPlanId,
        #[graphql(
            desc = "Makes retries safe: 1 to 255 printable ASCII characters, unique per \
                          change (the same key for another plan is BAD_USER_INPUT)."
        )]
        idempotency_key: Option<String>,
    ) -> ApiResult<PlanSelection> {
        let stripe = stripe(ctx)?;
        let workspace_id = parse_id(&workspace_id)?;
        let client_key = idempotency_key
            .as_deref()
            .map(manage::parse_client_key)
            .transpose()?;
        let membership = membership(ctx, workspace_id).await?;
        let request = request(ctx);
        let trail = request.trail()?;
        let pending = manage::select_plan(
            &request.db,
            stripe,
            &trail,
            &membership.workspace,
            plan.into(),
            client_key.as_deref(),
            Utc::now(),
        )
        .await?;
        let (requires_action, declined) = match pending {
            Some(PendingPayment::RequiresAction { client_secret }) => {
                (Some(PaymentAction { client_secret }), None)
            }
            Some(PendingPayment::Declined {
                code,
                decline_code,
                message,
            }) => (
                None,
                Some(PaymentDeclined {
                    code,
                    decline_code,
                    message,
                }),
            ),
            None => (None, None),
        };
        Ok(PlanSelection {
            billing: billing_of(ctx, workspace_id).await?,
            requires_action,
            declined,
        })
    }

    /// Sets the details invoices carry on the Stripe customer: the billing email (by
    /// default the Owner's, following ownership), company name, address and tax id. Fields
    /// left out keep their value; a value Stripe refuses (e.g. a malformed tax id) is
    /// BAD_USER_INPUT and changes nothing here.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageBilling, &workspace_id)",
        directive = require_role::apply(least(Action::ManageBilling))
    )]
    async fn update_billing_details(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        details: BillingDetailsInput,
    ) -> ApiResult<Billing> {
        let update = details.parse()?;
        change(ctx, &workspace_id, async |db, stripe, trail, ws| {
            manage::update_details(db, stripe, trail, ws, update, Utc::now()).await
        })
        .await
    }

    /// Ends the subscription at the end of the paid period.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageBilling, &workspace_id)",
        directive = require_role::apply(least(Action::ManageBilling))
    )]
    async fn cancel_subscription(&self, ctx: &Context<'_>, workspace_id: ID) -> ApiResult<Billing> {
        change(ctx, &workspace_id, async |db, stripe, trail, ws| {
            manage::set_cancel(db, stripe, trail, ws, true).await
        })
        .await
    }

    /// Undoes `cancelSubscription` before the period ends.
    ///
    /// Needs the ADMIN role or higher.
    #[graphql(
        guard = "RoleGuard::new(Action::ManageBilling, &workspace_id)",
        directive = require_role::apply(least(Action::ManageBilling))
    )]
    async fn resume_subscription(&self, ctx: &Context<'_>, workspace_id: ID) -> ApiResult<Billing> {
        change(ctx, &workspace_id, async |db, stripe, trail, ws| {
            manage::set_cancel(db, stripe, trail, ws, false).await
        })
        .await
    }
}

/// Runs one of `billing::manage`'s changes as the caller, then answers the workspace's
/// billing: what every billing mutation but `selectPlan` and `createSetupIntent` does.
async fn change(
    ctx: &Context<'_>,
    workspace_id: &ID,
    change: impl AsyncFnOnce(&Db, &StripeApi, &Trail, Uuid) -> Result<(), manage::BillingError>,
) -> ApiResult<Billing> {
    let stripe = stripe(ctx)?;
    let workspace_id = parse_id(workspace_id)?;
    let request = request(ctx);
    let trail = request.trail()?;
    change(&request.db, stripe, &trail, workspace_id).await?;
    billing_of(ctx, workspace_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_invoice_statuses_map_to_the_enum() {
        for (text, status) in [
            ("draft", InvoiceStatus::Draft),
            ("open", InvoiceStatus::Open),
            ("paid", InvoiceStatus::Paid),
            ("uncollectible", InvoiceStatus::Uncollectible),
            ("void", InvoiceStatus::Void),
            ("something_new", InvoiceStatus::Open),
        ] {
            assert_eq!(InvoiceStatus::from_stripe(text), status, "{text}");
        }
    }

    #[test]
    fn invoice_cursors_round_trip_and_refuse_garbage() {
        let cursor = invoice_cursor::encode("in_123");
        assert_eq!(invoice_cursor::decode(&cursor).expect("valid"), "in_123");
        for bad in [
            "",
            "in_123",
            "!!",
            &crate::db::page::Cursor {
                at: Utc::now(),
                id: Uuid::nil(),
            }
            .encode(),
        ] {
            assert!(invoice_cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
