//! The `Usage` type and `reportUsage`.

use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use uuid::Uuid;

use super::{model, Metric};
use crate::billing::plans::{CountLimit, Limits};
use crate::billing::{self, graphql::LimitsView};
use crate::error::ApiResult;
use crate::graphql::context::{parse_id, request};
use crate::graphql::guard::ServiceGuard;
use crate::graphql::scalars::Timestamp;
use crate::workspaces::model::WorkspaceRow;

/// What is metered per billing period.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "Metric", rename_items = "SCREAMING_SNAKE_CASE")]
pub enum UsageMetric {
    /// Chat and voice messages handled by agents.
    Messages,
    /// Text messages sent.
    Sms,
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
    let limits = billing::limits(conn, workspace).await?;
    usage_in(conn, workspace.id, period, limits).await
}

/// The usage of the workspace in `period`, against `limits`.
async fn usage_in(
    conn: &mut AsyncPgConnection,
    workspace_id: Uuid,
    (period_start, period_end): (DateTime<Utc>, DateTime<Utc>),
    limits: Limits,
) -> ApiResult<Usage> {
    let (messages, sms) = model::totals(conn, workspace_id, period_start).await?;
    let held = model::in_use(conn, workspace_id, crate::resources::kinds::limited()).await?;
    let held = |limit: CountLimit| {
        held.iter()
            .find(|(counted, _)| *counted == limit)
            .map_or(0, |(_, n)| *n)
    };
    let (agents, phone_numbers) = (held(CountLimit::Agents), held(CountLimit::PhoneNumbers));
    Ok(Usage {
        period_start: period_start.into(),
        period_end: period_end.into(),
        messages: clamp(messages),
        sms: clamp(sms),
        agents: clamp(agents),
        phone_numbers: clamp(phone_numbers),
        limits: limits.into(),
    })
}

#[derive(Default)]
pub struct UsageMutation;

/// Usage mutations.
#[Object]
impl UsageMutation {
    /// Metering from the agent runtime; needs a service token. Same idempotencyKey twice counts once.
    #[graphql(guard = "ServiceGuard")]
    async fn report_usage(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        metric: UsageMetric,
        quantity: i32,
        idempotency_key: String,
    ) -> ApiResult<Usage> {
        let request = request(ctx);
        let workspace_id = parse_id(&workspace_id)?;
        let trail = request.trail()?;
        let now = Utc::now();
        let mut conn = request.db.conn_in(workspace_id).await?;
        conn.transaction(async |conn| {
            let reported = super::report(
                conn,
                &trail,
                workspace_id,
                metric.into(),
                quantity,
                &idempotency_key,
                now,
            )
            .await?;
            usage_in(
                conn,
                reported.workspace.id,
                reported.period,
                reported.limits,
            )
            .await
        })
        .await
    }
}
