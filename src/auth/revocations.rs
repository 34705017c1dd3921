//! Whose tokens the work in progress revoked: the model's revoke functions [`note`] it,
//! and [`super::bearers::Bearers::revoking`] forgets those tokens once the work is over.
//! Apart from the cache, so that the model, which the cache reads its rows from, can note
//! without importing it.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use uuid::Uuid;

tokio::task_local! {
    static REVOKED: Revoked;
}

/// The people whose tokens a piece of work revoked.
#[derive(Clone, Default)]
pub struct Revoked(Arc<Mutex<Vec<Uuid>>>);

impl Revoked {
    /// Runs `work`, noting in `self` whose tokens it revokes. Not an `async fn`, which
    /// would keep `work` twice (BENCHMARKS.md, fortieth round).
    pub fn scope<F: Future>(&self, work: F) -> impl Future<Output = F::Output> {
        REVOKED.scope(self.clone(), work)
    }

    /// Whose tokens were noted since the last take.
    pub fn take(&self) -> Vec<Uuid> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Notes that some of `user_id`'s tokens are being revoked or deleted. Outside a scope (a
/// job, a script), the revocation's notification and the cache's age cover it
/// (src/auth/bearers.rs).
pub fn note(user_id: Uuid) {
    let _ = REVOKED.try_with(|revoked| {
        revoked
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(user_id);
    });
}
