//! A workspace's saved cards, mirrored from Stripe, and the notices about their expiry.
//!
//! Rules:
//! - Stripe holds the cards; `payment_methods` is what we last saw there. The workers keep
//!   it: every card webhook (attached, detached, updated, automatically updated) and every
//!   customer webhook queues the workspace's billing sync, which re-reads the cards, and the
//!   periodic reconciliation does the same for every billed workspace. The card mutations
//!   re-read them after they change Stripe. Reading a workspace's billing reads this table
//!   only: no Stripe call on the read path.
//! - A customer with cards and no default gets its first card as the default (a card added
//!   with Stripe.js arrives by webhook, not through us).
//! - The Owner and Admins are told twice about the default card, 30 days before it expires
//!   and when it has expired, each once per card and expiry date (as the trial notices are):
//!   a scan records the notice and enqueues its email in one transaction, and the unique
//!   key makes several workers or a retried scan record it once. When both are due at once,
//!   only the expired notice is emailed. A card Stripe updates automatically (a new expiry
//!   date from the issuer) has a new expiry date, so its old notices no longer apply, and
//!   an email whose card changed or stopped being the default before it went out is
//!   dropped.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use linkai_jobs::Payload;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::stripe::{Cards, PaymentMethod, StripeApi};
use super::{card_expiry, CardExpiry, CARD_EXPIRY_NOTICE_DAYS};
use crate::audit::{self, Event, Trail};
use crate::db::{bind, static_sql, Db};
use crate::schema::{card_notices, payment_methods};

/// The emails about the default card's expiry, each sent at most once per card and
/// expiry date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CardNotice {
    /// It expires within 30 days.
    ExpiresSoon,
    /// It has expired: payments with it fail.
    Expired,
}

impl CardNotice {
    pub fn as_db(self) -> &'static str {
        match self {
            CardNotice::ExpiresSoon => "expires_soon",
            CardNotice::Expired => "expired",
        }
    }

    pub fn from_db(text: &str) -> Option<Self> {
        [CardNotice::ExpiresSoon, CardNotice::Expired]
            .into_iter()
            .find(|notice| notice.as_db() == text)
    }
}

/// Job: email a workspace's Owner and Admins that its default card expires soon or expired
/// (`billing::jobs`); the notice row says which.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendCardNotice {
    pub workspace_id: Uuid,
    pub notice_id: Uuid,
}

impl Payload for SendCardNotice {
    const KIND: &'static str = "send_card_notice";
}

/// A saved card as mirrored.
#[derive(Queryable, Selectable, Clone, Debug, PartialEq, Eq)]
#[diesel(table_name = payment_methods)]
pub struct CardRow {
    pub id: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: i32,
    pub exp_year: i32,
    pub is_default: bool,
}

/// The workspace's cards, oldest first; the connection must be inside the workspace.
pub async fn list(conn: &mut AsyncPgConnection, workspace_id: Uuid) -> QueryResult<Vec<CardRow>> {
    payment_methods::table
        .filter(payment_methods::workspace_id.eq(workspace_id))
        .order((payment_methods::created_at, payment_methods::id))
        .select(CardRow::as_select())
        .load(conn)
        .await
}

/// Re-reads the customer's cards from Stripe (making the first the default when there is
/// none) and mirrors them; answers them. Stripe is called with no connection held.
pub async fn refresh(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
    customer: &str,
) -> anyhow::Result<Cards> {
    let cards = fetch(stripe, customer).await?;
    let mut conn = db.conn_in(workspace_id).await?;
    save(&mut conn, workspace_id, &cards).await?;
    Ok(cards)
}

/// [`refresh`] after a request changed the cards in Stripe: the mirror and the request's
/// audit event commit together.
pub async fn refresh_recording(
    db: &Db,
    stripe: &StripeApi,
    workspace_id: Uuid,
    customer: &str,
    trail: &Trail,
    event: Event,
) -> anyhow::Result<Cards> {
    let cards = fetch(stripe, customer).await?;
    let mut conn = db.conn_in(workspace_id).await?;
    conn.transaction(async |conn| {
        save(conn, workspace_id, &cards).await?;
        audit::record(conn, workspace_id, trail, event, Utc::now()).await
    })
    .await?;
    Ok(cards)
}

/// The customer's cards as Stripe has them, the first made the default when there is none.
async fn fetch(stripe: &StripeApi, customer: &str) -> anyhow::Result<Cards> {
    let mut cards = stripe.cards(customer).await?;
    if cards.default.is_none() {
        if let Some(first) = <[_]>::first(&cards.cards) {
            stripe
                .set_default_payment_method(customer, &first.id)
                .await?;
            cards.default = Some(first.id.clone());
        }
    }
    Ok(cards)
}

/// How an event names a card: brand and last four digits (`visa 4242`).
pub fn label(method: &PaymentMethod) -> String {
    let card = method.card.clone().unwrap_or_default();
    format!("{} {}", card.brand, card.last4)
}

/// Replaces the mirrored cards with `cards`: two statements, whatever the number of cards.
/// Between them a reader may see a removed card still listed, never a card that is not
/// Stripe's.
pub async fn save(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    cards: &Cards,
) -> QueryResult<()> {
    use diesel::upsert::excluded;
    use payment_methods::dsl as p;

    let ids: Vec<&str> = cards.cards.iter().map(|card| card.id.as_str()).collect();
    diesel::delete(
        p::payment_methods
            .filter(p::workspace_id.eq(workspace_id))
            .filter(diesel::dsl::not(p::id.eq_any(&ids))),
    )
    .execute(conn)
    .await?;
    // The default comes last, so the row that was the default has given way when it is
    // written (one default per workspace is a unique index, checked row by row).
    let default = cards.default.as_deref();
    let mut ordered: Vec<_> = cards.cards.iter().collect();
    ordered.sort_by_key(|method| Some(method.id.as_str()) == default);
    let rows: Vec<_> = ordered
        .into_iter()
        .map(|method| {
            let card = method.card.clone().unwrap_or_default();
            let is_default = default == Some(method.id.as_str());
            let created = DateTime::from_timestamp(method.created, 0).unwrap_or_default();
            (
                p::id.eq(method.id.clone()),
                p::workspace_id.eq(workspace_id),
                p::brand.eq(card.brand),
                p::last4.eq(card.last4),
                p::exp_month.eq(card.exp_month),
                p::exp_year.eq(card.exp_year),
                p::is_default.eq(is_default),
                p::created_at.eq(created),
            )
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    diesel::insert_into(p::payment_methods)
        .values(rows)
        .on_conflict((p::workspace_id, p::id))
        .do_update()
        .set((
            p::brand.eq(excluded(p::brand)),
            p::last4.eq(excluded(p::last4)),
            p::exp_month.eq(excluded(p::exp_month)),
            p::exp_year.eq(excluded(p::exp_year)),
            p::is_default.eq(excluded(p::is_default)),
            p::synced_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// The notices due at `now` for a card expiring at the end of `month`/`year`, earliest
/// first.
pub fn due(month: i32, year: i32, now: DateTime<Utc>) -> Vec<CardNotice> {
    match card_expiry(month, year, now) {
        CardExpiry::Valid => Vec::new(),
        CardExpiry::ExpiresSoon => vec![CardNotice::ExpiresSoon],
        CardExpiry::Expired => vec![CardNotice::ExpiresSoon, CardNotice::Expired],
    }
}

#[derive(QueryableByName)]
struct Expiring {
    #[diesel(sql_type = SqlUuid)]
    workspace_id: Uuid,
    #[diesel(sql_type = Text)]
    payment_method_id: String,
    #[diesel(sql_type = Integer)]
    exp_month: i32,
    #[diesel(sql_type = Integer)]
    exp_year: i32,
}

/// Records and enqueues the card notices due at `now`; returns how many emails were
/// enqueued.
pub async fn scan(db: &Db, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let mut conn = db.conn().await?;
    let expiring: Vec<Expiring> = static_sql(
        "SELECT workspace_id, payment_method_id, exp_month, exp_year \
         FROM cards_needing_notice($1, $2)",
        (
            bind::<Timestamptz, _>(now),
            bind::<Integer, _>(i32::try_from(CARD_EXPIRY_NOTICE_DAYS).unwrap_or(30)),
        ),
    )
    .load(&mut conn)
    .await?;
    let mut enqueued = 0;
    for card in expiring {
        let due = due(card.exp_month, card.exp_year, now);
        let Some(&most_urgent) = due.last() else {
            continue;
        };
        let sent = conn
            .transaction(async |conn| record(conn, &card, &due, most_urgent).await)
            .await?;
        enqueued += usize::from(sent);
    }
    Ok(enqueued)
}

/// Inserts the due notices; enqueues the most urgent one's email if this call recorded it.
async fn record(
    conn: &mut AsyncPgConnection,
    card: &Expiring,
    due: &[CardNotice],
    most_urgent: CardNotice,
) -> QueryResult<bool> {
    crate::db::enter_workspace(conn, card.workspace_id).await?;
    let rows: Vec<_> = due
        .iter()
        .map(|notice| {
            (
                card_notices::workspace_id.eq(card.workspace_id),
                card_notices::payment_method_id.eq(&card.payment_method_id),
                card_notices::exp_month.eq(card.exp_month),
                card_notices::exp_year.eq(card.exp_year),
                card_notices::notice.eq(notice.as_db()),
            )
        })
        .collect();
    let inserted: Vec<(Uuid, String)> = diesel::insert_into(card_notices::table)
        .values(rows)
        .on_conflict_do_nothing()
        .returning((card_notices::id, card_notices::notice))
        .get_results(conn)
        .await?;
    let Some((notice_id, _)) = inserted
        .into_iter()
        .find(|(_, notice)| notice == most_urgent.as_db())
    else {
        return Ok(false);
    };
    let job = SendCardNotice {
        workspace_id: card.workspace_id,
        notice_id,
    };
    crate::outbox::enqueue(conn, &job).await?;
    Ok(true)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = card_notices)]
struct NoticeRow {
    notice: String,
    payment_method_id: String,
    exp_month: i32,
    exp_year: i32,
    emailed_at: Option<DateTime<Utc>>,
}

/// A notice still to email, with the card it is about: `None` once it was sent, or when
/// the card is no longer the default with that expiry date. Locks the notice; the caller
/// is inside the workspace.
pub async fn pending(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    notice_id: Uuid,
) -> QueryResult<Option<(CardNotice, CardRow)>> {
    let notice: Option<NoticeRow> = card_notices::table
        .find((workspace_id, notice_id))
        .select(NoticeRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?;
    let Some(NoticeRow {
        notice,
        payment_method_id: card_id,
        exp_month: month,
        exp_year: year,
        emailed_at: None,
    }) = notice
    else {
        return Ok(None);
    };
    let Some(notice) = CardNotice::from_db(&notice) else {
        return Ok(None);
    };
    let card: Option<CardRow> = payment_methods::table
        .find((workspace_id, &card_id))
        .select(CardRow::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(card
        .filter(|card| card.is_default && card.exp_month == month && card.exp_year == year)
        .map(|card| (notice, card)))
}

pub async fn mark_emailed(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    notice_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(card_notices::table.find((workspace_id, notice_id)))
        .set(card_notices::emailed_at.eq(now))
        .execute(conn)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn notices_fall_due_30_days_before_the_end_of_the_expiry_month_and_after_it() {
        let at = |y, m, d| {
            Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
                .single()
                .expect("valid")
        };
        assert!(due(12, 2026, at(2026, 11, 30)).is_empty());
        assert_eq!(due(12, 2026, at(2026, 12, 2)), [CardNotice::ExpiresSoon]);
        assert_eq!(
            due(12, 2026, at(2027, 1, 1)),
            [CardNotice::ExpiresSoon, CardNotice::Expired]
        );
    }
}
