//! Workspaces: creating (each with its own 14-day trial), listing the caller's, switching,
//! renaming and deleting.
//!
//! Rules: a user sees exactly the workspaces they belong to; any other id is `NOT_FOUND`.
//! Delete is Owner-only and soft: `deleted_at` hides the workspace from every query at once
//! and keeps its rows for a later purge job.

pub mod graphql;
pub mod loader;
pub mod model;

use chrono::Duration;

pub const TRIAL_LENGTH: Duration = Duration::days(14);
