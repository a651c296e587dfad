//! When to try a webhook again, and what an answer means.

use std::time::Duration;

use rand::Rng;

use super::transport::{HttpAnswer, TransportError};

/// Delays between attempts: the first attempt is immediate, then one delay per retry.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    pub delays: Vec<Duration>,
    /// ± this fraction of each delay, so receivers coming back up are not hit in lockstep.
    pub jitter: f64,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for RetrySchedule {
    /// Eleven attempts over about a day: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 6 h, 8 h.
    fn default() -> Self {
        let s = Duration::from_secs;
        RetrySchedule {
            delays: vec![
                s(5),
                s(30),
                s(120),
                s(600),
                s(1800),
                s(3600),
                s(7200),
                s(14_400),
                s(21_600),
                s(28_800),
            ],
            jitter: 0.2,
            max_retry_after: s(86_400),
        }
    }
}

impl RetrySchedule {
    /// Parses `5s,30s,2m,1h` (s, m, h; a bare number is seconds).
    pub fn parse(list: &str) -> Result<RetrySchedule, String> {
        let delays = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (num, unit) = p.split_at(p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len()));
                let n: u64 = num
                    .parse()
                    .map_err(|_| format!("`{p}` is not a delay like 30s, 5m or 2h"))?;
                let secs = match unit {
                    "" | "s" => n,
                    "m" => n * 60,
                    "h" => n * 3600,
                    _ => return Err(format!("`{p}`: the unit must be s, m or h")),
                };
                Ok(Duration::from_secs(secs))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RetrySchedule {
            delays,
            ..RetrySchedule::default()
        })
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The delay after failed attempt number `attempts` (1-based), or `None` when that was the last.
    pub fn next_delay(&self, attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let base = *self.delays.get(attempts.checked_sub(1)? as usize)?;
        if let Some(asked) = retry_after {
            return Some(asked.min(self.max_retry_after));
        }
        let factor = if self.jitter > 0.0 {
            rand::rng().random_range(1.0 - self.jitter..1.0 + self.jitter)
        } else {
            1.0
        };
        Some(base.mul_f64(factor))
    }
}

/// What one attempt's result means for the delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Try again (after `Retry-After` when the receiver gave one).
    Retry {
        retry_after: Option<Duration>,
    },
    /// Never try again: another 4xx, or a refused address.
    GiveUp,
    /// 410 Gone: the receiver asked us to stop for good.
    Gone,
}

pub fn judge(result: &Result<HttpAnswer, TransportError>) -> Verdict {
    match result {
        Ok(answer) => match answer.status {
            200..=299 => Verdict::Delivered,
            410 => Verdict::Gone,
            408 | 429 => Verdict::Retry {
                retry_after: answer.retry_after,
            },
            400..=499 => Verdict::GiveUp,
            // 3xx (not followed: a redirect could lead anywhere), 5xx and anything odd.
            _ => Verdict::Retry {
                retry_after: answer.retry_after,
            },
        },
        Err(TransportError::Refused(_)) => Verdict::GiveUp,
        Err(TransportError::Timeout | TransportError::Connect(_)) => Verdict::Retry { retry_after: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> Result<HttpAnswer, TransportError> {
        Ok(HttpAnswer {
            status,
            retry_after: None,
        })
    }

    #[test]
    fn answers_are_judged_as_standard_webhooks_says() {
        assert_eq!(judge(&answer(204)), Verdict::Delivered);
        assert_eq!(judge(&answer(410)), Verdict::Gone);
        assert_eq!(judge(&answer(404)), Verdict::GiveUp);
        assert_eq!(judge(&answer(408)), Verdict::Retry { retry_after: None });
        assert_eq!(judge(&answer(503)), Verdict::Retry { retry_after: None });
        assert_eq!(judge(&answer(301)), Verdict::Retry { retry_after: None });
        let limited = Ok(HttpAnswer {
            status: 429,
            retry_after: Some(Duration::from_secs(7)),
        });
        assert_eq!(
            judge(&limited),
            Verdict::Retry {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            judge(&Err(TransportError::Timeout)),
            Verdict::Retry { retry_after: None }
        );
        assert_eq!(judge(&Err(TransportError::Refused("x".into()))), Verdict::GiveUp);
    }

    #[test]
    fn schedule_spans_about_a_day_with_jitter_and_ends() {
        let s = RetrySchedule::default();
        let total: Duration = s.delays.iter().sum();
        assert!(total > Duration::from_secs(20 * 3600) && total < Duration::from_secs(28 * 3600));
        for attempt in 1..s.max_attempts() {
            let base = s.delays[attempt as usize - 1];
            let d = s.next_delay(attempt, None).unwrap();
            assert!(d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2), "{attempt}: {d:?}");
        }
        assert_eq!(s.next_delay(s.max_attempts(), None), None);
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(90))),
            Some(Duration::from_secs(90))
        );
    }

    #[test]
    fn parses_a_configured_schedule() {
        let s = RetrySchedule::parse("0, 2s, 5m,1h").unwrap();
        let d = Duration::from_secs;
        assert_eq!(s.delays, vec![d(0), d(2), d(300), d(3600)]);
        assert!(RetrySchedule::parse("5 days").is_err());
    }
}
