//! The Rust parts of `bench/run`, as a library so the test suite can run the job
//! measurement with its Redis-command budget (see `tests/`).

pub mod baseline;
pub mod email;
pub mod noop_jobs;
pub mod otlp;
pub mod sockets;
pub mod stats;
