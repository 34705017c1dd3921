//! Which handler runs which kind of job. Each feature registers its own handlers
//! (`register` in its `jobs.rs`); the server's `worker.rs` wires them into one [`Handlers`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::job::{Job, Payload};

type Work = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
type Run<C> = Arc<dyn Fn(&Job, C) -> Work + Send + Sync>;
type Around = Arc<dyn Fn(Work) -> Work + Send + Sync>;

/// Handlers by job kind, each taking the payload it declared and the worker's context `C`.
pub struct Handlers<C> {
    by_kind: HashMap<&'static str, Run<C>>,
    /// What every handler's work runs inside ([`Handlers::around`]).
    around: Option<Around>,
}

impl<C> Default for Handlers<C> {
    fn default() -> Self {
        Self {
            by_kind: HashMap::new(),
            around: None,
        }
    }
}

impl<C: Send + 'static> Handlers<C> {
    /// Runs `handler` for jobs of `P`'s kind.
    ///
    /// # Panics
    /// When the kind has a handler already: two features claiming one kind is a wiring
    /// bug, found when the worker starts (and by the tests, which start one).
    #[must_use]
    pub fn on<P, F, Fut>(mut self, handler: F) -> Self
    where
        P: Payload,
        F: Fn(P, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let run: Run<C> = Arc::new(move |job: &Job, cx: C| {
            let payload = job.payload::<P>();
            let handler = Arc::clone(&handler);
            Box::pin(async move { handler(payload?, cx).await })
        });
        let taken = self.by_kind.insert(P::KIND, run).is_some();
        assert!(!taken, "two handlers for jobs of kind `{}`", P::KIND);
        self
    }

    /// Runs every handler's work inside `around` (the server wakes live subscribers once a
    /// job's transactions are over).
    #[must_use]
    pub fn around(mut self, around: impl Fn(Work) -> Work + Send + Sync + 'static) -> Self {
        self.around = Some(Arc::new(around));
        self
    }

    /// Runs `job`'s handler; an error (an unknown kind too: a newer build may know it)
    /// makes the worker retry it with backoff.
    pub async fn run(&self, job: &Job, cx: C) -> anyhow::Result<()> {
        let Some(run) = self.by_kind.get(job.kind()) else {
            anyhow::bail!("no handler for jobs of kind `{}`", job.kind());
        };
        match &self.around {
            Some(around) => around(run(job, cx)).await,
            None => run(job, cx).await,
        }
    }

    /// `kind` as a metrics label: its registered name, or `unknown` (a label never takes a
    /// name from the queue's data).
    pub fn label(&self, kind: &str) -> &'static str {
        self.by_kind
            .get_key_value(kind)
            .map_or("unknown", |(known, _)| known)
    }

    /// The kinds handled.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_kind.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Ping {
        n: u32,
    }

    impl Payload for Ping {
        const KIND: &'static str = "ping";
    }

    #[tokio::test]
    async fn a_job_reaches_the_handler_of_its_kind_with_its_payload() {
        let handlers = Handlers::<Arc<std::sync::Mutex<Vec<u32>>>>::default().on(
            |job: Ping, seen: Arc<std::sync::Mutex<Vec<u32>>>| async move {
                seen.lock().expect("lock").push(job.n);
                Ok(())
            },
        );
        let seen = Arc::default();
        let job = Job::of(&Ping { n: 7 }).expect("job");
        handlers.run(&job, Arc::clone(&seen)).await.expect("runs");
        assert_eq!(*seen.lock().expect("lock"), [7]);
        assert_eq!(handlers.kinds().collect::<Vec<_>>(), ["ping"]);
    }

    #[tokio::test]
    async fn every_handler_runs_inside_what_surrounds_them_all() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let outer = Arc::clone(&order);
        let handlers = Handlers::<Arc<std::sync::Mutex<Vec<&str>>>>::default()
            .on(
                |_: Ping, seen: Arc<std::sync::Mutex<Vec<&str>>>| async move {
                    seen.lock().expect("lock").push("handler");
                    Ok(())
                },
            )
            .around(move |work| {
                let order = Arc::clone(&outer);
                Box::pin(async move {
                    order.lock().expect("lock").push("before");
                    let done = work.await;
                    order.lock().expect("lock").push("after");
                    done
                })
            });
        let job = Job::of(&Ping { n: 1 }).expect("job");
        handlers.run(&job, Arc::clone(&order)).await.expect("runs");
        assert_eq!(*order.lock().expect("lock"), ["before", "handler", "after"]);
    }

    #[tokio::test]
    async fn an_unknown_kind_or_a_bad_payload_fails_the_job_so_it_is_retried() {
        let handlers = Handlers::<()>::default().on(|_: Ping, ()| async { Ok(()) });
        let unknown: Job = serde_json::from_str(r#"{"type":"pong"}"#).expect("job");
        let err = handlers.run(&unknown, ()).await.expect_err("no handler");
        assert!(err
            .to_string()
            .contains("no handler for jobs of kind `pong`"));
        let bad: Job = serde_json::from_str(r#"{"type":"ping","n":"seven"}"#).expect("job");
        assert!(handlers.run(&bad, ()).await.is_err());
    }

    #[test]
    #[should_panic(expected = "two handlers for jobs of kind `ping`")]
    fn two_features_cannot_claim_one_kind() {
        let _ = Handlers::<()>::default()
            .on(|_: Ping, ()| async { Ok(()) })
            .on(|_: Ping, ()| async { Ok(()) });
    }
}
