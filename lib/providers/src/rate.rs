//! A provider's request budget per account (Replicate: 600 creates a minute). A call over
//! budget is not made: the caller gets how long to wait, and the engine re-queues the job for
//! then (`ProviderError::RateLimited`), so jobs wait instead of failing on 429s.
//!
//! The count is per process. Several processes sharing an account (Lambdas) can still
//! overshoot together; the provider's 429, honoured the same way, is the backstop.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use reelay_core::plan::Secret;
use reelay_core::ports::ProviderError;

pub struct RateLimiter {
    limit: usize,
    window: Duration,
    /// When each call of the current window was made, per account.
    calls: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// `limit` calls per `window` (tests compress the window).
    pub fn new(limit: usize, window: Duration) -> Self {
        RateLimiter {
            limit: limit.max(1),
            window,
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call from the account's budget, or says how long until one frees.
    pub fn acquire(&self, account: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let log = calls.entry(account.to_string()).or_default();
        while log.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            log.pop_front();
        }
        if log.len() < self.limit {
            log.push_back(now);
            return Ok(());
        }
        let oldest = log.front().copied().unwrap_or(now);
        Err(self.window.saturating_sub(now.duration_since(oldest)))
    }

    /// `acquire` as the error the engine acts on.
    pub fn take(&self, key: Option<&Secret>) -> Result<(), ProviderError> {
        self.acquire(&account(key)).map_err(|wait| ProviderError::RateLimited {
            retry_after: Some(wait),
        })
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

    #[test]
    fn a_spent_budget_says_when_it_frees_and_accounts_are_separate() {
        let limiter = RateLimiter::new(2, Duration::from_millis(200));
        assert!(limiter.acquire("a").is_ok());
        assert!(limiter.acquire("a").is_ok());
        let wait = limiter.acquire("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200), "{wait:?}");
        assert!(limiter.acquire("b").is_ok(), "another account has its own budget");
        std::thread::sleep(wait + Duration::from_millis(5));
        assert!(limiter.acquire("a").is_ok(), "the window moved on");
        assert_ne!(account(Some(&Secret::new("k1"))), account(Some(&Secret::new("k2"))));
        assert!(!account(Some(&Secret::new("secret-key"))).contains("secret"));
    }
}
