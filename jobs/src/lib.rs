//! `linkai-jobs`: background job payloads, handlers, schedules and email templates.
//!
//! This crate does not depend on the server crate: it declares the small traits it needs
//! and the server implements them. Job payloads carry ids, never secrets.
