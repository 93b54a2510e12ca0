//! Whom a room's messages may alert, cached for a moment: reading a room's members and
//! their levels for every message would cost a query per message (thousands of rows in a
//! big room), while members and levels change rarely. Changes made on this instance
//! clear the room's entry at once; on other instances of a cluster they show within
//! [`TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::NotifyLevel;

use crate::directory::{AlertTarget, Directory, RoomSettings};
use crate::locks;
use crate::store::StoreError;

/// How long a room's entry is trusted.
const TTL: Duration = Duration::from_secs(5);

/// Rooms cached at once; beyond it the cache starts over (it refills as messages come).
const MAX_ROOMS: usize = 10_000;

/// Members read per room: a bigger room alerts only the first this many (in the
/// directory's order).
const MAX_MEMBERS: usize = 20_000;

/// A room's targets as cached: its settings and its members with their levels. Shared
/// (`Arc`), so each message reads them without copying them.
pub(crate) struct RoomTargets {
    at: Instant,
    pub(crate) settings: Option<RoomSettings>,
    pub(crate) members: Vec<AlertTarget>,
}

impl RoomTargets {
    /// `user`'s level in the room (the default when they are not a member).
    pub(crate) fn level(&self, user: &str) -> NotifyLevel {
        self.members
            .iter()
            .find(|t| t.user == user)
            .map(|t| t.level)
            .unwrap_or_default()
    }
}

/// The cache; see the module docs.
pub(crate) struct Targets {
    directory: Arc<dyn Directory>,
    rooms: Mutex<HashMap<String, Arc<RoomTargets>>>,
}

impl Targets {
    pub(crate) fn new(directory: Arc<dyn Directory>) -> Self {
        Targets {
            directory,
            rooms: Mutex::default(),
        }
    }

    /// The room's settings and members, from the cache while they are fresh.
    pub(crate) async fn of(&self, room: &str) -> Result<Arc<RoomTargets>, StoreError> {
        let cached = locks::lock(&self.rooms).get(room).cloned();
        if let Some(entry) = cached.filter(|e| e.at.elapsed() < TTL) {
            return Ok(entry);
        }
        let settings = self.directory.settings(room).await?;
        let members = self.directory.alert_targets(room, MAX_MEMBERS).await?;
        let entry = Arc::new(RoomTargets {
            at: Instant::now(),
            settings,
            members,
        });
        let mut rooms = locks::lock(&self.rooms);
        if rooms.len() >= MAX_ROOMS {
            rooms.clear();
        }
        rooms.insert(room.to_owned(), Arc::clone(&entry));
        Ok(entry)
    }

    /// Drops `room`'s entry: its members or levels changed here.
    pub(crate) fn forget(&self, room: &str) {
        locks::lock(&self.rooms).remove(room);
    }
}
