//! Password hashing with Argon2id (the crate's defaults: 19 MiB, 2 passes), off the async
//! executor because each hash takes tens of milliseconds of CPU.
//!
//! At most one hash runs per core ([`Passwords`], one per server): a flood of sign-ins (128
//! at once took 2.46 GiB and pushed other users' requests to a 358 ms median) now waits its
//! turn for about [`WAIT`], then answers `RATE_LIMITED`, so memory and everyone else's
//! latency stay flat. Each hash runs on a thread of its own at the lowest CPU priority, so
//! the hashes that do run yield the core to other users' requests. The limit belongs to the
//! server rather than the process, so servers sharing a process (the test suite's) do not
//! queue behind each other's floods.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::TryRngCore as _;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ApiResult};

/// How long a password check waits for a free core, on average, before answering
/// `RATE_LIMITED` (each waits from 1.5 to 2.5 s: [`Passwords::patience`]).
pub const WAIT: Duration = Duration::from_secs(2);

/// The password hasher of one server: one hash per core at a time. Clones share the limit.
#[derive(Clone)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    wait: Duration,
    /// Hashes running now, and the most that ever ran at once (for the abuse test).
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new(slots(), WAIT)
    }
}

/// How many hashes may run at once: the cores this process may use.
pub fn slots() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Passwords {
    pub fn new(slots: usize, wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            wait,
            running: Arc::default(),
            peak: Arc::default(),
        }
    }

    /// The most hashes that have run at once on this hasher.
    pub fn peak_concurrency(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Runs `work` on a thread of its own once a slot is free (waiting at most `wait`). The
    /// slot goes with the thread and is freed when the work ends, not when the request does:
    /// a client that gives up mid-hash (a timeout, a closed connection) still holds its core
    /// until the hash it started is done, so leaving clients cannot push past one per core.
    async fn limited<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        let acquired =
            tokio::time::timeout(self.patience(), self.slots.clone().acquire_owned()).await;
        let permit = match acquired {
            Ok(Ok(permit)) => permit,
            Ok(Err(closed)) => return Err(ApiError::internal(&closed)),
            Err(_) => {
                return Err(ApiError::rate_limited(
                    "Too many password checks at once; try again in a few seconds.",
                    Duration::from_secs(1),
                ))
            }
        };
        let running = Arc::clone(&self.running);
        let now_running = running.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now_running, Ordering::Relaxed);
        let (sender, result) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("password-hash".to_owned())
            .spawn(move || {
                lower_this_threads_priority();
                // The request may have gone (timed out, client left): nobody to tell.
                let _ = sender.send(work());
                running.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        match spawned {
            Ok(_) => result.await.map_err(|err| ApiError::internal(&err)),
            Err(err) => {
                // The closure (and with it the permit) is gone; only the count is left.
                self.running.fetch_sub(1, Ordering::Relaxed);
                Err(ApiError::internal(&err))
            }
        }
    }

    /// How long one check waits for a slot: `wait` on average, from three quarters of it to
    /// five quarters, at random. A flood's checks arrive together; with one fixed wait they
    /// were refused together, came back together, and their bursts held up other users'
    /// requests for the first seconds of the flood (BENCHMARKS.md, thirty-second round).
    /// Spread, they fall apart; the average keeps the flood's refusals as rare as before.
    fn patience(&self) -> Duration {
        self.wait.mul_f64(rand::random_range(0.75..=1.25))
    }

    pub async fn hash(&self, password: String) -> ApiResult<String> {
        self.limited(move || {
            let salt = new_salt()?;
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
        })
        .await?
        .map_err(|err| ApiError::internal(&err))
    }

    /// Verifies `password` against `stored`; with no stored hash (unknown account) it still
    /// spends the same work on a dummy hash, so the answer time does not reveal the account.
    pub async fn verify(&self, password: String, stored: Option<String>) -> ApiResult<bool> {
        let known = stored.is_some();
        self.limited(move || {
            let stored = stored.unwrap_or_else(dummy_hash);
            let parsed = PasswordHash::new(&stored).map_err(|err| ApiError::internal(&err))?;
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known && matches)
        })
        .await?
    }
}

/// Hashing threads run at the lowest CPU priority (nice 19; on Linux a thread's own): on a
/// busy core the runtime's threads (and PostgreSQL beside them) go first, so a flood of
/// sign-ins delays sign-ins, not everyone else's requests. An idle core still hashes at full
/// speed. Failing to lower it only loses that preference.
fn lower_this_threads_priority() {
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
}

fn new_salt() -> Result<SaltString, argon2::password_hash::Error> {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random source is available");
    SaltString::encode_b64(&bytes)
}

fn dummy_hash() -> String {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY
        .get_or_init(|| {
            let Ok(salt) = new_salt() else {
                return String::new();
            };
            Argon2::default()
                .hash_password(b"not-a-real-password", &salt)
                .map(|hash| hash.to_string())
                .unwrap_or_default()
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[tokio::test]
    async fn hashes_verify_only_the_right_password() {
        let passwords = Passwords::default();
        let stored = passwords
            .hash("correct horse".into())
            .await
            .expect("hashes");
        assert!(stored.starts_with("$argon2id$"));
        assert!(passwords
            .verify("correct horse".into(), Some(stored.clone()))
            .await
            .expect("verifies"));
        assert!(!passwords
            .verify("wrong horse".into(), Some(stored))
            .await
            .expect("verifies"));
        assert!(!passwords
            .verify("anything".into(), None)
            .await
            .expect("verifies"));
    }

    #[tokio::test]
    async fn with_every_slot_taken_a_check_waits_then_is_rate_limited() {
        let passwords = Passwords::new(1, Duration::from_millis(20));
        let held = passwords.slots.acquire().await.expect("open");
        let err = passwords.limited(|| 1).await.expect_err("no free slot");
        assert_eq!(err.code(), ErrorCode::RateLimited);
        drop(held);
        assert_eq!(passwords.limited(|| 2).await.expect("free"), 2);
    }

    /// Checks refused together wait for different times, around the average: a flood's
    /// checks are not refused, and do not come back, together.
    #[tokio::test(start_paused = true)]
    async fn checks_refused_together_wait_for_different_times_around_the_average() {
        let passwords = Passwords::new(1, Duration::from_secs(2));
        let _held = passwords.slots.acquire().await.expect("open");
        let started = tokio::time::Instant::now();
        let waits = futures_util::future::join_all((0..20).map(|_| async {
            let err = passwords.limited(|| ()).await.expect_err("no free slot");
            assert_eq!(err.code(), ErrorCode::RateLimited);
            started.elapsed()
        }))
        .await;
        let shortest = *waits.iter().min().expect("twenty checks");
        let longest = *waits.iter().max().expect("twenty checks");
        assert!(shortest >= Duration::from_millis(1500), "{shortest:?}");
        assert!(longest <= Duration::from_millis(2500), "{longest:?}");
        assert!(
            longest - shortest > Duration::from_millis(300),
            "spread over the range: {shortest:?} to {longest:?}"
        );
    }

    /// Issue 27: a client that left mid-hash freed its slot while its hash ran on, so
    /// clients that disconnect could run more hashes than cores. The slot is now held until
    /// the hash ends.
    #[tokio::test]
    async fn a_dropped_request_keeps_its_slot_until_its_hash_ends() {
        let passwords = Passwords::new(1, Duration::from_millis(50));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let first = passwords.clone();
        let abandoned = tokio::spawn(async move {
            first
                .limited(move || {
                    let _ = gate.recv();
                })
                .await
        });
        while passwords.running.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        // The client leaves; its hash is still running.
        abandoned.abort();
        let _ = abandoned.await;
        let err = passwords.limited(|| 1).await.expect_err("the core is busy");
        assert_eq!(err.code(), ErrorCode::RateLimited);
        assert_eq!(passwords.peak_concurrency(), 1);
        // The hash ends: its slot is free again.
        release.send(()).expect("the hash waits");
        while passwords.running.load(Ordering::Relaxed) == 1 {
            tokio::task::yield_now().await;
        }
        assert_eq!(passwords.limited(|| 2).await.expect("free"), 2);
    }
}
