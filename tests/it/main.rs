//! Black-box tests over HTTP against the real PostgreSQL (one fresh database per test,
//! cloned from a template migrated once per run) and the real Redis.

mod harness;
mod smtp;

mod abuse;
mod account_emails;
mod accounts;
mod audit;
mod billing;
mod billing_faults;
mod cards;
mod catalog;
mod cli;
mod clients;
mod concurrency;
mod conversations;
mod errors;
mod faults;
mod fuzz;
mod http;
mod invitations;
mod isolation;
mod layering;
mod members;
mod metrics;
mod phone_billing;
mod pool_context;
mod resources;
mod role_matrix;
mod schedule;
mod schema;
mod sdl;
mod security_log;
mod sessions;
mod statement_budgets;
mod statements;
mod stripe_proxy;
mod token_scope;
mod trial;
mod ui_schema;
mod usage;
mod webhooks;
mod workspaces;
