//! Resume records in Redis: one string per stream (`Keys::stream`), JSON, with a TTL,
//! so a stream that dropped on one instance resumes on any other.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use super::{Resume, Streams, StreamsError};
use crate::cluster::keys::Keys;

pub(crate) struct RedisStreams {
    conn: ConnectionManager,
    keys: Keys,
}

impl RedisStreams {
    pub(crate) fn new(conn: ConnectionManager, keys: Keys) -> Self {
        RedisStreams { conn, keys }
    }
}

/// Milliseconds for PEXPIRE/PX, at least one (zero would be an error).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Streams for RedisStreams {
    async fn keep(&self, id: &str, resume: &Resume, ttl: Duration) -> Result<(), StreamsError> {
        let json = serde_json::to_string(resume)?;
        let options =
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(millis(ttl)));
        let () = self
            .conn
            .clone()
            .set_options(self.keys.stream(id), json, options)
            .await?;
        Ok(())
    }

    async fn expire(&self, id: &str, ttl: Duration) -> Result<(), StreamsError> {
        // PEXPIRE leaves a missing key missing: a taken record stays taken.
        let _: bool = self
            .conn
            .clone()
            .pexpire(
                self.keys.stream(id),
                i64::try_from(millis(ttl)).unwrap_or(i64::MAX),
            )
            .await?;
        Ok(())
    }

    async fn take(&self, id: &str) -> Result<Option<Resume>, StreamsError> {
        // GETDEL: two instances taking the same record cannot both get it.
        let json: Option<String> = self.conn.clone().get_del(self.keys.stream(id)).await?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    async fn forget(&self, id: &str) -> Result<(), StreamsError> {
        let _: u64 = self.conn.clone().del(self.keys.stream(id)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::test_server::Server;

    #[ignore = "needs redis-server on PATH"]
    #[tokio::test]
    async fn conformance() {
        let server = Server::start().await;
        let client = redis::Client::open(server.url()).unwrap();
        let conn = crate::cluster::manager(&client).await.unwrap();
        let streams = RedisStreams::new(conn, Keys::new("s").unwrap());
        super::super::conformance::a_record_is_taken_once_and_expires(&streams).await;
    }
}
