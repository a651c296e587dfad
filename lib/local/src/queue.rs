//! The `Queue` port on SQLite, with SQS semantics: at-least-once, delays, a visibility
//! timeout after which an unacknowledged message comes back, and receipts that go stale
//! when a message is received again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use rusqlite::params;
use tokio::sync::Notify;

use reelay_core::ports::{Clock, Delivery, Message, Queue, QueueError};

use crate::db::Db;

pub struct SqliteQueue {
    db: Db,
    /// The table this queue lives in (one per queue: jobs, webhooks).
    table: &'static str,
    clock: Arc<dyn Clock>,
    /// Wakes waiting receivers when a message is sent, so release latency is not a poll period.
    arrived: Notify,
}

impl SqliteQueue {
    /// The job queue.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self::in_table(db, clock, "queue")
    }

    /// The client-webhook queue.
    pub fn webhooks(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self::in_table(db, clock, "webhook_queue")
    }

    fn in_table(db: Db, clock: Arc<dyn Clock>, table: &'static str) -> Self {
        SqliteQueue {
            db,
            table,
            clock,
            arrived: Notify::new(),
        }
    }

    /// After a crash of the one process that owns this database, messages it had in flight
    /// are nobody's: makes them visible now.
    pub fn recover_in_flight(&self) -> Result<usize, QueueError> {
        let now = self.clock.now();
        let conn = self.db.lock();
        conn.execute(
            &self.sql("UPDATE {q} SET visible_at = ?1, receipt = NULL WHERE receipt IS NOT NULL AND visible_at > ?1"),
            [now],
        )
        .map_err(unavailable)
    }

    /// Messages waiting or in flight.
    pub fn depth(&self) -> Result<u64, QueueError> {
        let conn = self.db.lock();
        conn.query_row(&self.sql("SELECT COUNT(*) FROM {q}"), [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(unavailable)
    }

    fn sql(&self, template: &str) -> String {
        template.replace("{q}", self.table)
    }

    fn try_receive(&self, max: usize, visibility: Duration) -> Result<(Vec<Delivery>, Option<i64>), QueueError> {
        let now = self.clock.now();
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(unavailable)?;
        let rows: Vec<(i64, String, u32)> = {
            let mut stmt = tx
                .prepare_cached(&self.sql(
                    "SELECT id, body, receive_count FROM {q} WHERE visible_at <= ?1 ORDER BY visible_at, id LIMIT ?2",
                ))
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![now, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(unavailable)?;
            rows.collect::<Result<_, _>>().map_err(unavailable)?
        };
        if rows.is_empty() {
            let next: Option<i64> = tx
                .query_row(&self.sql("SELECT MIN(visible_at) FROM {q}"), [], |r| r.get(0))
                .map_err(unavailable)?;
            return Ok((Vec::new(), next));
        }
        let hidden_until = now + visibility.as_millis() as i64;
        let mut deliveries = Vec::with_capacity(rows.len());
        for (id, body, count) in rows {
            let receipt = format!("{id}:{:016x}", rand::rng().random::<u64>());
            tx.prepare_cached(
                &self.sql(
                    "UPDATE {q} SET visible_at = ?2, receive_count = receive_count + 1, receipt = ?3 WHERE id = ?1",
                ),
            )
            .map_err(unavailable)?
            .execute(params![id, hidden_until, receipt])
            .map_err(unavailable)?;
            match serde_json::from_str::<Message>(&body) {
                Ok(message) => deliveries.push(Delivery {
                    message,
                    receipt,
                    receive_count: count + 1,
                }),
                Err(e) => {
                    // Unreadable bodies cannot be handled by anyone: drop them, loudly.
                    tracing::error!(id, error = %e, "dropping an unreadable queue message");
                    tx.execute(&self.sql("DELETE FROM {q} WHERE id = ?1"), [id])
                        .map_err(unavailable)?;
                }
            }
        }
        tx.commit().map_err(unavailable)?;
        Ok((deliveries, None))
    }

    fn settle(&self, receipt: &str, sql: &str, at: Option<i64>) -> Result<(), QueueError> {
        let id: i64 = receipt
            .split_once(':')
            .and_then(|(id, _)| id.parse().ok())
            .ok_or_else(|| QueueError::Malformed(format!("bad receipt {receipt}")))?;
        let conn = self.db.lock();
        let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
        // A stale receipt (the message was received again since) matches nothing: by design.
        match at {
            Some(at) => stmt.execute(params![id, receipt, at]),
            None => stmt.execute(params![id, receipt]),
        }
        .map_err(unavailable)?;
        Ok(())
    }
}

fn unavailable(e: rusqlite::Error) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, messages: &[Message], delay: Duration) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let visible_at = self.clock.now() + delay.as_millis() as i64;
        {
            let mut conn = self.db.lock();
            let tx = conn.transaction().map_err(unavailable)?;
            {
                let mut stmt = tx
                    .prepare_cached(&self.sql("INSERT INTO {q} (body, visible_at) VALUES (?1, ?2)"))
                    .map_err(unavailable)?;
                for message in messages {
                    let body = serde_json::to_string(message).map_err(|e| QueueError::Malformed(e.to_string()))?;
                    stmt.execute(params![body, visible_at]).map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)?;
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration, wait: Duration) -> Result<Vec<Delivery>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so a send between the look and the wait wakes us.
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let (deliveries, next_visible) = self.try_receive(max, visibility)?;
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Sleep until a send, the next delayed message, or the deadline; capped so a
            // test's manual clock moving forward is noticed.
            let mut nap = (deadline - now).min(Duration::from_millis(100));
            if let Some(at) = next_visible {
                let until = (at - self.clock.now()).max(1) as u64;
                nap = nap.min(Duration::from_millis(until));
            }
            let _ = tokio::time::timeout(nap, arrived).await;
        }
    }

    async fn ack(&self, receipt: &str) -> Result<(), QueueError> {
        self.settle(
            receipt,
            &self.sql("DELETE FROM {q} WHERE id = ?1 AND receipt = ?2"),
            None,
        )
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let at = self.clock.now() + delay.as_millis() as i64;
        self.settle(
            receipt,
            &self.sql("UPDATE {q} SET visible_at = ?3 WHERE id = ?1 AND receipt = ?2"),
            Some(at),
        )?;
        if delay.is_zero() {
            self.arrived.notify_waiters();
        }
        Ok(())
    }
}
