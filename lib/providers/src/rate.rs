//! A provider's request budget per account (Replicate: 600 creates a minute). A call over
//! budget is not made: the caller gets how long to wait, and the engine re-queues the job for
//! then (`ProviderError::RateLimited`), so jobs wait instead of failing on 429s.
//!
//! The count lives in a [`RateBudget`]: [`InProcessBudget`] for one process (the embedded
//! node), a shared one on AWS (the DynamoDB store), so that all the functions calling one
//! account stay within its limit together. The provider's 429, honoured the same way, stays
//! the backstop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use reelay_core::plan::Secret;
use reelay_core::ports::{ProviderError, RateBudget, StoreError};

/// One limit of one provider (`replicate/creates`: 600 a minute), counted per account.
#[derive(Clone)]
pub struct RateLimiter {
    name: &'static str,
    limit: u32,
    window: Duration,
    budget: Arc<dyn RateBudget>,
}

impl RateLimiter {
    /// `limit` calls per `window` (tests compress the window), counted in this process until
    /// [`RateLimiter::shared`] says otherwise.
    pub fn new(name: &'static str, limit: usize, window: Duration) -> Self {
        RateLimiter {
            name,
            limit: limit.clamp(1, u32::MAX as usize) as u32,
            window,
            budget: Arc::new(InProcessBudget::default()),
        }
    }

    /// The same limit, counted in `budget`.
    pub fn shared(self, budget: Arc<dyn RateBudget>) -> Self {
        RateLimiter { budget, ..self }
    }

    /// Takes one call from the key's account, or fails with how long to wait.
    pub async fn take(&self, key: Option<&Secret>) -> Result<(), ProviderError> {
        let scope = format!("{}/{}", self.name, account(key));
        match self.budget.take(&scope, self.limit, self.window).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => Err(ProviderError::RateLimited {
                retry_after: Some(wait),
            }),
            // Not knowing the count is no licence to overspend: try again shortly.
            Err(e) => Err(ProviderError::Retryable {
                message: format!("rate budget unavailable: {e}"),
                retry_after: Some(Duration::from_secs(1)),
            }),
        }
    }
}

/// A budget counted in this process: the calls of each scope's current window.
#[derive(Default)]
pub struct InProcessBudget {
    calls: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl InProcessBudget {
    fn acquire(&self, scope: &str, limit: u32, window: Duration) -> Result<(), Duration> {
        let now = Instant::now();
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let log = calls.entry(scope.to_string()).or_default();
        while log.front().is_some_and(|t| now.duration_since(*t) >= window) {
            log.pop_front();
        }
        if log.len() < limit as usize {
            log.push_back(now);
            return Ok(());
        }
        let oldest = log.front().copied().unwrap_or(now);
        Err(window.saturating_sub(now.duration_since(oldest)))
    }
}

#[async_trait]
impl RateBudget for InProcessBudget {
    async fn take(&self, scope: &str, limit: u32, window: Duration) -> Result<Result<(), Duration>, StoreError> {
        Ok(self.acquire(scope, limit, window))
    }
}

/// Which account a key is (its hash: keys are never kept in clear, not even in memory maps).
pub fn account(key: Option<&Secret>) -> String {
    match key {
        None => "configured".to_string(),
        Some(k) => Sha256::digest(k.expose().as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spent_budget_says_when_it_frees_and_accounts_are_separate() {
        let limiter = RateLimiter::new("test", 2, Duration::from_millis(200));
        let (a, b) = (Secret::new("key-a"), Secret::new("key-b"));
        assert!(limiter.take(Some(&a)).await.is_ok());
        assert!(limiter.take(Some(&a)).await.is_ok());
        let wait = match limiter.take(Some(&a)).await {
            Err(ProviderError::RateLimited {
                retry_after: Some(wait),
            }) => wait,
            other => panic!("{other:?}"),
        };
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200), "{wait:?}");
        assert!(
            limiter.take(Some(&b)).await.is_ok(),
            "another account has its own budget"
        );
        tokio::time::sleep(wait + Duration::from_millis(5)).await;
        assert!(limiter.take(Some(&a)).await.is_ok(), "the window moved on");
        assert_ne!(account(Some(&Secret::new("k1"))), account(Some(&Secret::new("k2"))));
        assert!(!account(Some(&Secret::new("secret-key"))).contains("secret"));
    }
}
