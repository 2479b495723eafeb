//! The pipelines an MCP client launched, by id, until it stops them or disconnects.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value as Json, json};
use streamlib_launch::{LaunchOptions, Session, stats_json_with_reports};

/// A launched pipeline and how it was launched.
#[derive(Debug)]
pub struct Launched {
    /// The running session.
    pub session: Session,
    /// Its launch options (for `finished` with a frame limit).
    pub options: LaunchOptions,
}

impl Launched {
    /// Whether it ended by itself: end of stream everywhere, or its frame limit reached.
    pub fn finished(&self) -> bool {
        self.session.is_finished()
            || self.options.frames.is_some_and(|frames| {
                self.session
                    .stats()
                    .is_some_and(|stats| stats.clock_ticks >= frames)
            })
    }

    /// Live statistics and state as JSON.
    pub fn report(&self, id: &str) -> Json {
        json!({
            "id": id,
            "pipeline": self.session.desc().to_text(),
            "finished": self.finished(),
            "stats": self
                .session
                .stats()
                .map(|stats| stats_json_with_reports(&stats, self.session.controls())),
        })
    }
}

#[derive(Default)]
struct Table {
    /// Numbers ids: `p1`, `p2`, … (never reused in one connection).
    launched: u64,
    running: BTreeMap<String, Launched>,
    /// Set once the client disconnected: nothing is admitted after that.
    closed: bool,
}

/// The pipelines of one MCP connection. Each method holds the lock only briefly (session
/// methods that read stats or queue a property change are quick); stopping happens outside.
#[derive(Default)]
pub struct Pipelines {
    table: Mutex<Table>,
}

impl Pipelines {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `launched` under a new id; gives it back, with the reason, when the client
    /// already disconnected or `limit` pipelines are running (the caller stops it).
    pub fn insert(
        &self,
        launched: Launched,
        limit: usize,
    ) -> Result<String, (Box<Launched>, String)> {
        let mut table = self.lock();
        if table.closed {
            return Err((
                Box::new(launched),
                "the client disconnected; the pipeline was stopped".to_owned(),
            ));
        }
        if table.running.len() >= limit {
            return Err((
                Box::new(launched),
                format!(
                    "{limit} pipelines are running, the most one connection may run; stop one first"
                ),
            ));
        }
        table.launched += 1;
        let id = format!("p{}", table.launched);
        table.running.insert(id.clone(), launched);
        Ok(id)
    }

    /// How many pipelines are running.
    pub fn len(&self) -> usize {
        self.lock().running.len()
    }

    /// Runs `f` on the pipeline `id`, under the lock.
    pub fn with<R>(&self, id: &str, f: impl FnOnce(&Launched) -> R) -> Result<R, String> {
        let table = self.lock();
        match table.running.get(id) {
            Some(launched) => Ok(f(launched)),
            None => Err(unknown(id, &table)),
        }
    }

    /// Forgets the pipeline `id` and hands it over (to be stopped).
    pub fn remove(&self, id: &str) -> Result<Launched, String> {
        let mut table = self.lock();
        match table.running.remove(id) {
            Some(launched) => Ok(launched),
            None => Err(unknown(id, &table)),
        }
    }

    /// Every pipeline's id, text and state.
    pub fn list(&self) -> Vec<Json> {
        self.lock()
            .running
            .iter()
            .map(|(id, launched)| {
                json!({
                    "id": id,
                    "pipeline": launched.session.desc().to_text(),
                    "finished": launched.finished(),
                })
            })
            .collect()
    }

    /// Admits nothing more and hands over every pipeline (to be stopped), in id order.
    pub fn close(&self) -> Vec<(String, Launched)> {
        let mut table = self.lock();
        table.closed = true;
        std::mem::take(&mut table.running).into_iter().collect()
    }
}

fn unknown(id: &str, table: &Table) -> String {
    if table.running.is_empty() {
        format!("no pipeline `{id}`: none is running (launch_pipeline starts one)")
    } else {
        let ids: Vec<&str> = table.running.keys().map(String::as_str).collect();
        format!("no pipeline `{id}`; running: {}", ids.join(", "))
    }
}
