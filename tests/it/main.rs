//! Black-box tests over HTTP against the real PostgreSQL (one fresh database per test,
//! cloned from a template migrated once per run) and the real Redis.

mod harness;

mod accounts;
mod catalog;
mod cli;
mod concurrency;
mod errors;
mod members;
mod role_matrix;
mod schema;
mod statements;
mod workspaces;
