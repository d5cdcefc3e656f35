//! How an activity is given time and second chances: a timeout per attempt,
//! a bounded number of attempts with exponential backoff in between, and
//! errors that say whether trying again can help. The same policy is handed
//! to Temporal, so both engines retry alike.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Exponential backoff with a cap, and a bound on attempts (Temporal's
/// `RetryPolicy` has the same fields).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// The wait before the second attempt.
    pub initial_interval: Duration,
    /// Each wait is this many times the one before.
    pub backoff_coefficient: f64,
    pub maximum_interval: Duration,
    /// Attempts in all, the first included; at least 1.
    pub maximum_attempts: u32,
}

impl RetryPolicy {
    /// One attempt, no retry: for steps whose failure is a verdict.
    pub const ONCE: RetryPolicy = RetryPolicy {
        initial_interval: Duration::from_millis(100),
        backoff_coefficient: 2.0,
        maximum_interval: Duration::from_secs(1),
        maximum_attempts: 1,
    };

    pub const fn attempts(maximum_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            initial_interval: Duration::from_millis(200),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(5),
            maximum_attempts,
        }
    }

    /// The wait after failed attempt `attempt` (from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor =
            self.backoff_coefficient.max(1.0).powi(attempt.saturating_sub(1).min(64) as i32);
        self.initial_interval.mul_f64(factor.min(1e6)).min(self.maximum_interval)
    }
}

/// What an activity gets: a deadline per attempt and a retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActivityOptions {
    /// Temporal's start-to-close timeout: one attempt, start to end.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

/// Why an activity failed, and whether another attempt could succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{activity}: {message}")]
pub struct ActivityError {
    pub activity: String,
    pub message: String,
    /// `false`: the input itself is wrong (a config the collector refuses);
    /// the same attempt again would fail the same way.
    pub retryable: bool,
}

impl ActivityError {
    pub fn retryable(activity: &str, message: impl Into<String>) -> Self {
        ActivityError { activity: activity.to_owned(), message: message.into(), retryable: true }
    }

    pub fn fatal(activity: &str, message: impl Into<String>) -> Self {
        ActivityError { activity: activity.to_owned(), message: message.into(), retryable: false }
    }
}

/// An error with its causes, `outer: cause: root cause`: what an activity
/// error and a command's message say.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One attempt's end, for whoever records attempts.
#[derive(Debug)]
pub enum AttemptEnd<'a, T> {
    Ok(&'a T),
    Err(&'a ActivityError),
}

/// Runs `attempt` under `options`: each try within the timeout, retryable
/// errors tried again after the backoff until the attempts run out.
/// `started(n)` is awaited before attempt `n` starts and `ended(n, end)`
/// after it ends, so the caller can record every attempt; if recording
/// fails, so does the activity (retryably), since an unrecorded attempt
/// could not be replayed.
pub async fn run_with_retry<T, F, Fut, S, SFut, E, EFut>(
    activity: &str,
    options: &ActivityOptions,
    mut attempt: F,
    mut started: S,
    mut ended: E,
) -> Result<T, ActivityError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ActivityError>>,
    S: FnMut(u32) -> SFut,
    SFut: Future<Output = Result<(), ActivityError>>,
    E: FnMut(u32, AttemptEnd<'_, T>) -> EFut,
    EFut: Future<Output = Result<(), ActivityError>>,
{
    let attempts = options.retry.maximum_attempts.max(1);
    let mut n = 1;
    loop {
        started(n).await?;
        let result = match tokio::time::timeout(options.timeout, attempt()).await {
            Ok(result) => result,
            Err(_) => Err(ActivityError::retryable(
                activity,
                format!("timed out after {:?}", options.timeout),
            )),
        };
        match &result {
            Ok(value) => ended(n, AttemptEnd::Ok(value)).await?,
            Err(err) => ended(n, AttemptEnd::Err(err)).await?,
        }
        match result {
            Ok(value) => return Ok(value),
            Err(err) if !err.retryable || n >= attempts => return Err(err),
            Err(err) => {
                let wait = options.retry.backoff(n);
                tracing::warn!(%activity, attempt = n, ?wait, error = %err.message, "retrying");
                tokio::time::sleep(wait).await;
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn options(attempts: u32) -> ActivityOptions {
        ActivityOptions {
            timeout: Duration::from_millis(200),
            retry: RetryPolicy {
                initial_interval: Duration::from_millis(1),
                backoff_coefficient: 2.0,
                maximum_interval: Duration::from_millis(4),
                maximum_attempts: attempts,
            },
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            initial_interval: Duration::from_millis(100),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_millis(350),
            maximum_attempts: 10,
        };
        let waits: Vec<u128> = (1..=5).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 350, 350, 350]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(350), "no overflow");
    }

    async fn run(
        attempts: u32,
        outcomes: Vec<Result<u32, ActivityError>>,
    ) -> (Result<u32, ActivityError>, Vec<String>) {
        let log = Mutex::new(Vec::new());
        let outcomes = Mutex::new(outcomes.into_iter());
        let result = run_with_retry(
            "push_config",
            &options(attempts),
            || {
                let next = outcomes.lock().unwrap().next();
                async move {
                    match next {
                        Some(outcome) => outcome,
                        None => std::future::pending().await,
                    }
                }
            },
            |n| {
                log.lock().unwrap().push(format!("start {n}"));
                async { Ok(()) }
            },
            |n, end| {
                let what = match end {
                    AttemptEnd::Ok(v) => format!("ok {v}"),
                    AttemptEnd::Err(e) => format!("err {}", e.message),
                };
                log.lock().unwrap().push(format!("end {n} {what}"));
                async { Ok(()) }
            },
        )
        .await;
        (result, log.into_inner().unwrap())
    }

    #[tokio::test]
    async fn retryable_errors_are_retried_until_success() {
        let (result, log) =
            run(3, vec![Err(ActivityError::retryable("push_config", "EAGAIN")), Ok(7)]).await;
        assert_eq!(result, Ok(7));
        assert_eq!(log, ["start 1", "end 1 err EAGAIN", "start 2", "end 2 ok 7"]);
    }

    #[tokio::test]
    async fn a_fatal_error_is_not_retried() {
        let (result, log) =
            run(5, vec![Err(ActivityError::fatal("push_config", "refused")), Ok(1)]).await;
        assert_eq!(result.unwrap_err().message, "refused");
        assert_eq!(log.len(), 2);
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_a_hang_times_out() {
        let (result, log) = run(2, vec![Err(ActivityError::retryable("push_config", "x"))]).await;
        let err = result.unwrap_err();
        assert!(err.message.contains("timed out"), "{err}");
        assert!(err.retryable);
        assert_eq!(log, ["start 1", "end 1 err x", "start 2", "end 2 err timed out after 200ms"]);
    }
}
