//! Billing operations: one change of a workspace's billing at a time, idempotent end to
//! end (issue 26).
//!
//! A plan change is a row, written before Stripe is called and settled after:
//! - at most one is open per workspace (a partial unique index), so two admins or two tabs
//!   choosing plans at once never run side by side: the second is `CONFLICT`;
//! - its id is Stripe's idempotency key and goes into the subscription's metadata, so a
//!   retry of the same operation finds what an earlier attempt made, in Stripe's own list,
//!   even where Stripe does not replay keys (the local fake does not);
//! - a client's `idempotencyKey` names it: a retry after a timeout resumes the open
//!   operation, a retry after it settled gets the first answer, and the same key for
//!   another request is refused;
//! - an operation is run by the request that began it, under a lease (the request timeout,
//!   and `STRIPE_CALL_LANDING` for a Stripe call it sent to land: `src/config.rs`): while
//!   the lease runs, anyone else is `CONFLICT`, the same key included (never two runners
//!   at once);
//!   after it, the same key resumes the operation and another request takes it over (the
//!   next change decides from Stripe's list, where whatever the dead request made is found).
//!
//! No row lock and no pooled connection are held while Stripe is called: the open row is
//! the lock.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::plans::PlanId;
use super::stripe::PendingPayment;
use crate::schema::billing_operations as ops;

/// The longest `idempotencyKey` a client may send.
pub const MAX_CLIENT_KEY_LEN: usize = 255;

/// Where an operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Written, Stripe being called (or the request died, until its lease ends).
    Open,
    /// Stripe's result mirrored; `answer` holds what the request answered.
    Settled,
    /// Stripe refused it, or it was abandoned; `answer` says why.
    Failed,
}

impl State {
    fn as_db(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Settled => "settled",
            State::Failed => "failed",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [State::Open, State::Settled, State::Failed]
            .into_iter()
            .find(|state| state.as_db() == raw)
    }
}

/// What a plan selection answered, kept for a retry with the same key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Answer {
    /// The plan is chosen; the first payment may still need the customer.
    Chosen { pending: Option<PendingPayment> },
    /// Stripe refused the request (its status and message for people).
    Refused { status: u16, message: String },
    /// Left open by a request that died, and taken over by a later change.
    Abandoned,
    /// Done, with nothing to tell a client (an operation the workers run: no client key
    /// names it).
    Done,
}

/// What an operation changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// `selectPlan`: put the workspace on this plan ([`super::manage`]).
    SelectPlan(PlanId),
    /// Bring the subscription's phone-numbers item in step with the workspace's phone
    /// numbers ([`super::phone_numbers`]).
    PhoneNumbers,
}

/// The kind of a plan choice, as stored.
const SELECT_PLAN: &str = "select_plan";

impl Intent {
    fn kind(self) -> &'static str {
        match self {
            Intent::SelectPlan(_) => SELECT_PLAN,
            Intent::PhoneNumbers => "phone_numbers",
        }
    }

    fn as_json(self) -> serde_json::Value {
        match self {
            Intent::SelectPlan(plan) => json!({ "plan": plan.as_db() }),
            Intent::PhoneNumbers => json!({}),
        }
    }
}

/// An operation to run: its id, what it asked, and which attempt this is (its lease's end:
/// each begin or resume has its own).
#[derive(Clone, Debug)]
pub struct Operation {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub intent: Intent,
    attempt: DateTime<Utc>,
}

impl Operation {
    /// Stripe's idempotency key for `step` of this attempt. A resumed operation sends new
    /// keys: Stripe replays a key's first answer for a day, a failure included, and refuses
    /// the same key with other parameters; what an earlier attempt made is found by the
    /// operation in the subscription's metadata instead.
    pub fn key(&self, step: &str) -> String {
        format!("op-{}-{step}-{}", self.id, self.attempt.timestamp_micros())
    }
}

/// How a request's operation begins.
#[derive(Debug)]
pub enum Begun {
    /// Run it: a new operation, or the open one its key names (a retry).
    Run(Operation),
    /// Its key names a finished operation: answer as it did.
    Answered(Answer),
}

/// Why an operation cannot begin.
#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    #[error("Another billing change is in progress for this workspace; try again in a moment.")]
    InProgress,
    #[error("This idempotencyKey was used for a different request.")]
    KeyReused,
    #[error("idempotencyKey must be 1 to 255 printable ASCII characters.")]
    BadKey,
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = ops)]
struct Row {
    id: Uuid,
    kind: String,
    intent: serde_json::Value,
    client_key: Option<String>,
    state: String,
    answer: Option<serde_json::Value>,
}

/// Checks a client's key: printable ASCII, at most [`MAX_CLIENT_KEY_LEN`].
pub fn parse_client_key(raw: &str) -> Result<String, BeginError> {
    let printable = raw.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if raw.is_empty() || raw.len() > MAX_CLIENT_KEY_LEN || !printable {
        return Err(BeginError::BadKey);
    }
    Ok(raw.to_owned())
}

/// Begins `intent` for the workspace, on a connection inside it: a new open
/// operation (one statement, when none is open and the key is new); else answers the
/// finished operation `client_key` names, resumes it if its lease ran out, or takes over
/// another whose lease ran out; `InProgress` while an open one's lease runs. Leases are
/// read and written on the database's clock, which every server shares.
pub async fn begin(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    intent: Intent,
    client_key: Option<&str>,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Begun, BeginError> {
    let new = New {
        workspace_id,
        intent,
        client_key,
        lease,
        now,
    };
    // The unique indexes (one open per workspace, one operation per key) decide races.
    if let Some(operation) = new.insert(conn).await? {
        return Ok(Begun::Run(operation));
    }
    conn.transaction(async |conn| {
        let open = open_one(conn, workspace_id).await?;
        if let Some(row) = match client_key {
            Some(key) => by_client_key(conn, workspace_id, key).await?,
            None => None,
        } {
            if row.kind != intent.kind() || row.intent != intent.as_json() {
                return Err(BeginError::KeyReused);
            }
            if State::parse(&row.state) != Some(State::Open) {
                return Ok(Begun::Answered(stored_answer(row.answer)));
            }
        }
        match open {
            Some((_, true)) => Err(BeginError::InProgress),
            // Its request died: the retry with its key runs it on, under a new lease.
            Some((open, false))
                if client_key.is_some() && open.client_key.as_deref() == client_key =>
            {
                let attempt = renew(conn, open.id, lease).await?;
                Ok(Begun::Run(Operation {
                    id: open.id,
                    workspace_id,
                    intent,
                    attempt,
                }))
            }
            other => {
                if let Some((open, _)) = other {
                    finish(
                        conn,
                        workspace_id,
                        open.id,
                        State::Failed,
                        None,
                        &Answer::Abandoned,
                        now,
                    )
                    .await?;
                }
                new.insert(conn)
                    .await?
                    .map(Begun::Run)
                    .ok_or(BeginError::InProgress)
            }
        }
    })
    .await
}

/// An operation about to be written.
struct New<'a> {
    workspace_id: Uuid,
    intent: Intent,
    client_key: Option<&'a str>,
    lease: Duration,
    now: DateTime<Utc>,
}

#[derive(diesel::QueryableByName)]
struct Leased {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    leased_until: DateTime<Utc>,
}

impl New<'_> {
    /// Writes it open; `None` when a unique index refused it (another is open, or the key
    /// is taken), without failing the caller's transaction.
    async fn insert(&self, conn: &mut AsyncPgConnection) -> QueryResult<Option<Operation>> {
        use crate::db::bind;
        use diesel::sql_types::{Interval, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
        let id = Uuid::now_v7();
        let written: Option<Leased> = crate::db::static_sql(
            "INSERT INTO billing_operations \
               (id, workspace_id, kind, intent, client_key, state, created_at, leased_until) \
             VALUES ($1, $2, $7, $3, $4, 'open', $5, now() + $6) \
             ON CONFLICT DO NOTHING RETURNING leased_until",
            (
                bind::<SqlUuid, _>(id),
                bind::<SqlUuid, _>(self.workspace_id),
                bind::<Jsonb, _>(self.intent.as_json()),
                bind::<Nullable<Text>, _>(self.client_key),
                bind::<Timestamptz, _>(self.now),
                bind::<Interval, _>(self.lease),
                bind::<Text, _>(self.intent.kind()),
            ),
        )
        .get_result(conn)
        .await
        .optional()?;
        Ok(written.map(|written| Operation {
            id,
            workspace_id: self.workspace_id,
            intent: self.intent,
            attempt: written.leased_until,
        }))
    }
}

/// Gives an open operation a new lease from now, on the database's clock: its end.
async fn renew(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    lease: Duration,
) -> QueryResult<DateTime<Utc>> {
    use crate::db::bind;
    use diesel::sql_types::{Interval, Uuid as SqlUuid};
    let renewed: Leased = crate::db::static_sql(
        "UPDATE billing_operations SET leased_until = now() + $2 WHERE id = $1 \
         RETURNING leased_until",
        (bind::<SqlUuid, _>(id), bind::<Interval, _>(lease)),
    )
    .get_result(conn)
    .await?;
    Ok(renewed.leased_until)
}

/// Renews the lease of an operation still open, from now (a worker's operation, bounded by
/// no request, renews it as it goes); false when it is no longer open (taken over).
pub async fn extend(conn: &mut AsyncPgConnection, id: Uuid, lease: Duration) -> QueryResult<bool> {
    use crate::db::bind;
    use diesel::sql_types::{Interval, Uuid as SqlUuid};
    let renewed: Option<Leased> = crate::db::static_sql(
        "UPDATE billing_operations SET leased_until = now() + $2 \
         WHERE id = $1 AND state = 'open' RETURNING leased_until",
        (bind::<SqlUuid, _>(id), bind::<Interval, _>(lease)),
    )
    .get_result(conn)
    .await
    .optional()?;
    Ok(renewed.is_some())
}

/// The request running an operation ended without settling it (Stripe failed or could not
/// be reached): it is held only while a call it sent may still land, so its retry can come
/// soon after.
pub async fn release(conn: &mut AsyncPgConnection, id: Uuid, landing: Duration) -> QueryResult<()> {
    renew(conn, id, landing).await.map(drop)
}

async fn by_client_key(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    key: &str,
) -> QueryResult<Option<Row>> {
    ops::table
        .filter(ops::workspace_id.eq(workspace_id))
        .filter(ops::client_key.eq(key))
        .select(Row::as_select())
        .first(conn)
        .await
        .optional()
}

/// Whether a plan choice's lease runs for the workspace now (its request may be making or
/// changing a subscription, and settles it itself). A phone-numbers operation changes only
/// its item, which no sync decides about.
pub async fn plan_change_running(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        ops::table
            .filter(ops::workspace_id.eq(workspace_id))
            .filter(ops::kind.eq(SELECT_PLAN))
            .filter(ops::state.eq(State::Open.as_db()))
            .filter(ops::leased_until.gt(diesel::dsl::now)),
    ))
    .get_result(conn)
    .await
}

/// The workspace's open operation, locked, and whether its lease still runs (on the
/// database's clock).
async fn open_one(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
) -> QueryResult<Option<(Row, bool)>> {
    ops::table
        .filter(ops::workspace_id.eq(workspace_id))
        .filter(ops::state.eq(State::Open.as_db()))
        .select((Row::as_select(), ops::leased_until.gt(diesel::dsl::now)))
        .for_update()
        .first(conn)
        .await
        .optional()
}

fn stored_answer(answer: Option<serde_json::Value>) -> Answer {
    answer
        .and_then(|answer| serde_json::from_value(answer).ok())
        .unwrap_or(Answer::Abandoned)
}

/// Closes an open operation with its answer (and the subscription it settled on); a no-op
/// when it is no longer open (taken over meanwhile). Call inside the transaction that
/// mirrors its result.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    id: Uuid,
    state: State,
    subscription_id: Option<&str>,
    answer: &Answer,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let answer = serde_json::to_value(answer)
        .map_err(|err| diesel::result::Error::SerializationError(Box::new(err)))?;
    let closed = diesel::update(
        ops::table
            .find((workspace_id, id))
            .filter(ops::state.eq(State::Open.as_db())),
    )
    .set((
        ops::state.eq(state.as_db()),
        ops::stripe_subscription_id.eq(subscription_id),
        ops::answer.eq(answer),
        ops::settled_at.eq(now),
    ))
    .execute(conn)
    .await?;
    Ok(closed == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_are_short_printable_ascii() {
        assert!(parse_client_key("b3f1c2d4-retry").is_ok());
        assert!(parse_client_key(&"k".repeat(MAX_CLIENT_KEY_LEN)).is_ok());
        for bad in ["", "has space", "tab\t", "é", "\u{0}"] {
            assert!(parse_client_key(bad).is_err(), "{bad:?}");
        }
        assert!(parse_client_key(&"k".repeat(MAX_CLIENT_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn answers_round_trip_as_stored() {
        let answers = [
            Answer::Chosen { pending: None },
            Answer::Chosen {
                pending: Some(PendingPayment::RequiresAction {
                    client_secret: "pi_secret".into(),
                }),
            },
            Answer::Refused {
                status: 402,
                message: "declined".into(),
            },
            Answer::Abandoned,
        ];
        for answer in answers {
            let stored = serde_json::to_value(&answer).expect("serialises");
            assert_eq!(stored_answer(Some(stored)), answer);
        }
        assert_eq!(stored_answer(None), Answer::Abandoned);
    }
}
