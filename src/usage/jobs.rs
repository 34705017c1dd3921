//! Usage's jobs: the alert emails ([`super::alerts`]), each sent to the Owner and Admins
//! once (the alert is marked emailed after it went out; a rerun finds it marked).

use chrono::Utc;
use linkai_jobs::email::{messages, render, when};

use super::alerts::{self, SendUsageAlert};
use crate::jobs::{Handlers, JobContext};

pub fn register(handlers: Handlers) -> Handlers {
    handlers.on(send_usage_alert)
}

async fn send_usage_alert(job: SendUsageAlert, cx: JobContext) -> anyhow::Result<()> {
    let mut conn = cx.db.conn_in(job.workspace_id).await?;
    let Some(alert) = alerts::pending(&mut conn, job.workspace_id, job.alert_id).await? else {
        return Ok(());
    };
    let workspace = crate::workspaces::model::find_live(&mut conn, job.workspace_id).await?;
    let Some(workspace) = workspace else {
        return Ok(());
    };
    let (_, renews) = crate::billing::usage_period(&mut conn, &workspace, Utc::now()).await?;
    drop(conn);
    let what = alert.what.label();
    let consequence = match alert.what {
        alerts::Limited::Messages | alerts::Limited::Sms => format!(
            "At the limit, new {what} are refused until the period renews on {}, or until a larger plan is chosen.",
            when(renews)
        ),
        alerts::Limited::Agents | alerts::Limited::PhoneNumbers => {
            format!("At the limit, no more {what} can be added until a larger plan is chosen.")
        }
    };
    let sent = cx
        .notify_admins(
            job.workspace_id,
            |_| true,
            |to, name, workspace| {
                let message = messages::UsageAlert {
                    name,
                    workspace: workspace.name.clone(),
                    used: alert.used.to_string(),
                    limit: alert.limit.to_string(),
                    what: what.to_owned(),
                    percent: format!("{} %", alert.threshold),
                    consequence: consequence.clone(),
                    link: cx.page("settings/billing"),
                };
                render(to, &message)
            },
        )
        .await?;
    if sent {
        let mut conn = cx.db.conn_in(job.workspace_id).await?;
        alerts::mark_emailed(&mut conn, job.workspace_id, job.alert_id, Utc::now()).await?;
    }
    Ok(())
}
