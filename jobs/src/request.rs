//! The request a piece of work is done for: its id is in scope while the server handles the
//! request (src/http/request_id.rs) and while a worker runs a job it queued
//! ([`crate::queue`]), so a job queued in either carries it on ([`crate::Job::of`]) and
//! every log line of the request, its jobs and their emails names the same id.

use std::future::Future;

use uuid::Uuid;

tokio::task_local! {
    static REQUEST_ID: Uuid;
}

/// The id of the request whose work is running, if any.
pub fn current() -> Option<Uuid> {
    REQUEST_ID.try_with(|id| *id).ok()
}

/// Runs `work` as part of request `id`.
pub async fn scope<F: Future>(id: Uuid, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}
