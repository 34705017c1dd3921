//! `linkai-jobs`: the job queue on Redis (apalis), the job envelope and its registry of
//! handlers, the email templates with their typed values, and the mail transport.
//!
//! This crate does not depend on the server crate, and holds no feature's rules: each
//! feature of the server declares its jobs' payloads ([`Payload`]) and registers their
//! handlers ([`Handlers`]); the server's `worker.rs` wires them. Job payloads carry ids,
//! never secrets; a one-time token is minted by the handler right before its email is
//! sent, so it never passes through Redis or the outbox.

pub mod email;
pub mod job;
pub mod queue;
pub mod registry;
pub mod request;

pub use job::{Job, Payload};
pub use queue::{JobQueue, WorkerSettings};
pub use registry::Handlers;
