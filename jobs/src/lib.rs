//! `linkai-jobs`: background job payloads, handlers, email templates and transport, and the
//! apalis workers that run them on Redis.
//!
//! This crate does not depend on the server crate: it declares the small trait it needs
//! ([`store::JobStore`]) and the server implements it over PostgreSQL. Job payloads carry
//! ids, never secrets; a one-time token is minted by the handler right before its email is
//! sent, so it never passes through Redis or the outbox.

pub mod email;
pub mod handler;
pub mod job;
pub mod queue;
pub mod store;

pub use handler::Deps;
pub use job::{CardNotice, Job, TrialNotice};
pub use queue::{JobQueue, WorkerSettings};
pub use store::JobStore;
