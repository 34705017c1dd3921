//! The `Usage` type and `reportUsage`.

use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};

use super::model;
use crate::billing::graphql::LimitsView;
use crate::billing::{self, plans::Limits};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::graphql::context::{parse_id, request};
use crate::graphql::guard::ensure_writable;
use crate::graphql::scalars::Timestamp;
use crate::workspaces::model::WorkspaceRow;

pub const MAX_QUANTITY: i32 = 1_000_000;
const MAX_KEY_CHARS: usize = 200;

/// What is metered per billing period.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum UsageMetric {
    /// Chat and voice messages handled by agents.
    Messages,
    /// Text messages sent.
    Sms,
}

impl UsageMetric {
    fn as_db(self) -> &'static str {
        match self {
            UsageMetric::Messages => "messages",
            UsageMetric::Sms => "sms",
        }
    }

    fn limit(self, limits: &Limits) -> i32 {
        match self {
            UsageMetric::Messages => limits.messages,
            UsageMetric::Sms => limits.sms,
        }
    }
}

/// A workspace's usage in the current billing period, against its limits.
#[derive(SimpleObject)]
pub struct Usage {
    /// Start of the current billing period.
    period_start: Timestamp,
    /// End of the current billing period.
    period_end: Timestamp,
    /// Messages this period.
    messages: i32,
    /// SMS this period.
    sms: i32,
    /// Agents now.
    agents: i32,
    /// Phone numbers now.
    phone_numbers: i32,
    /// The plan's limits (the highest plan's during the trial).
    limits: LimitsView,
}

fn clamp(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The usage of `workspace` now, on a connection inside it.
pub async fn usage_of(conn: &mut AsyncPgConnection, workspace: &WorkspaceRow) -> ApiResult<Usage> {
    let period = billing::usage_period(conn, workspace, Utc::now()).await?;
    usage_in(conn, workspace, period).await
}

/// The usage of `workspace` in `period`.
async fn usage_in(
    conn: &mut AsyncPgConnection,
    workspace: &WorkspaceRow,
    (period_start, period_end): (DateTime<Utc>, DateTime<Utc>),
) -> ApiResult<Usage> {
    let (messages, sms) = model::totals(conn, workspace.id, period_start).await?;
    let (agents, phone_numbers) = model::in_use(conn, workspace.id).await?;
    Ok(Usage {
        period_start: period_start.into(),
        period_end: period_end.into(),
        messages: clamp(messages),
        sms: clamp(sms),
        agents: clamp(agents),
        phone_numbers: clamp(phone_numbers),
        limits: billing::limits(conn, workspace).await?.into(),
    })
}

#[derive(Default)]
pub struct UsageMutation;

/// Usage mutations.
#[Object]
impl UsageMutation {
    /// Metering from the agent runtime; needs a service token. Same idempotencyKey twice counts once.
    async fn report_usage(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        metric: UsageMetric,
        quantity: i32,
        idempotency_key: String,
    ) -> ApiResult<Usage> {
        let request = request(ctx);
        if !request.service {
            return Err(match request.caller {
                Some(_) => ApiError::forbidden("reportUsage needs a service token."),
                None => ApiError::unauthenticated(),
            });
        }
        let workspace_id = parse_id(&workspace_id)?;
        if !(1..=MAX_QUANTITY).contains(&quantity) {
            return Err(ApiError::bad_input(format!(
                "`quantity` must be 1 to {MAX_QUANTITY}."
            )));
        }
        let key = idempotency_key.trim();
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            return Err(ApiError::bad_input(format!(
                "`idempotencyKey` must be 1 to {MAX_KEY_CHARS} characters."
            )));
        }
        // PostgreSQL text cannot hold NUL: refused here, not as a database error.
        if key.chars().any(char::is_control) {
            return Err(ApiError::bad_input(
                "`idempotencyKey` must not contain control characters.",
            ));
        }
        let trail = request.trail()?;
        let now = Utc::now();
        let mut conn = request.db.conn_in(workspace_id).await?;
        conn.transaction(async |conn| {
            let workspace = crate::workspaces::model::find_live(conn, workspace_id)
                .await?
                .ok_or_else(|| ApiError::not_found("Workspace"))?;
            let period = billing::usage_period(conn, &workspace, now).await?;
            let period_start = period.0;
            let fresh = model::insert_event(
                conn,
                workspace_id,
                key,
                metric.as_db(),
                quantity,
                period_start,
            )
            .await?;
            if fresh {
                ensure_writable(&workspace)?;
                let limit = metric.limit(&billing::limits(conn, &workspace).await?);
                let total = model::add_within_limit(
                    conn,
                    workspace_id,
                    period_start,
                    metric.as_db(),
                    quantity,
                    limit,
                )
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::UsageLimitReached,
                        format!(
                            "This would pass the plan's {} limit for the period ({limit}).",
                            metric.as_db()
                        ),
                    )
                })?;
                super::record_report(
                    conn,
                    &trail,
                    workspace_id,
                    super::Report {
                        metric: metric.as_db(),
                        total,
                        limit,
                        period_start,
                    },
                    now,
                )
                .await?;
            } else {
                let seen = model::find_event(conn, workspace_id, key).await?;
                if seen != Some((metric.as_db().to_owned(), quantity)) {
                    return Err(ApiError::conflict(
                        "This idempotencyKey was used for a different report.",
                    ));
                }
            }
            usage_in(conn, &workspace, period).await
        })
        .await
    }
}
