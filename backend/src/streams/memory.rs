//! Resume records in this process: a stream resumes only on the node it ran on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{Resume, Streams, StreamsError};
use crate::locks;

/// Records by stream id with their expiry; expired ones are swept as the table grows.
#[derive(Default)]
pub(crate) struct MemoryStreams {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    records: HashMap<String, (Resume, Instant)>,
    /// The size at which to sweep next: twice what the last sweep left, so sweeping
    /// costs O(1) per insert on average.
    sweep_at: usize,
}

#[async_trait]
impl Streams for MemoryStreams {
    async fn keep(&self, id: &str, resume: &Resume, ttl: Duration) -> Result<(), StreamsError> {
        let now = Instant::now();
        let mut table = locks::lock(&self.table);
        if table.records.len() >= table.sweep_at {
            table.records.retain(|_, (_, until)| *until > now);
            table.sweep_at = (table.records.len() * 2).max(64);
        }
        table
            .records
            .insert(id.to_owned(), (resume.clone(), now + ttl));
        Ok(())
    }

    async fn expire(&self, id: &str, ttl: Duration) -> Result<(), StreamsError> {
        if let Some((_, until)) = locks::lock(&self.table).records.get_mut(id) {
            *until = Instant::now() + ttl;
        }
        Ok(())
    }

    async fn take(&self, id: &str) -> Result<Option<Resume>, StreamsError> {
        let taken = locks::lock(&self.table).records.remove(id);
        Ok(taken
            .filter(|(_, until)| *until > Instant::now())
            .map(|(resume, _)| resume))
    }

    async fn forget(&self, id: &str) -> Result<(), StreamsError> {
        locks::lock(&self.table).records.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance() {
        super::super::conformance::a_record_is_taken_once_and_expires(&MemoryStreams::default())
            .await;
    }
}
