//! The pipelines an MCP client launched, by id, until it stops them or disconnects.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Value as Json, json};
use streamlib_launch::{LaunchOptions, Session, stats_json_with_reports};

/// A launched pipeline and how it was launched.
#[derive(Debug)]
pub struct Launched {
    /// The running session.
    pub session: Session,
    /// Its launch options (for `finished` with a frame limit).
    pub options: LaunchOptions,
    /// Its place among the pipelines the connection may run, given back when it is dropped
    /// (once stopped). Held only to be dropped.
    pub _slot: Slot,
    /// Its control room, once the `control_room` tool started one; served until the
    /// pipeline is stopped.
    #[cfg(feature = "ui")]
    pub control_room: Option<streamlib_ui::ControlRoom>,
    /// The preview taps added at launch (`previews: true`), for its control room.
    #[cfg(feature = "ui")]
    pub previews: Vec<streamlib_ui::PreviewTap>,
}

/// A place among the pipelines one connection may run ([`Pipelines::reserve`]). It is taken
/// before a launch builds anything and moves with the work: into the blocking launch, then
/// into the table, then into the blocking stop. It is given back when dropped, so a launch or
/// a stop that outlives its tool call (abandoned) still counts until its work really ends.
#[derive(Debug)]
pub struct Slot {
    taken: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.taken.fetch_sub(1, Ordering::AcqRel);
    }
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
    /// Slots taken: pipelines starting, running or stopping.
    taken: Arc<AtomicUsize>,
}

impl Pipelines {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for a pipeline about to be launched, unless `limit` are already starting,
    /// running or stopping. Concurrent launches each take their own, so no more than `limit`
    /// are ever built at once.
    pub fn reserve(&self, limit: usize) -> Result<Slot, String> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < limit).then_some(taken + 1)
            })
            .map(|_| Slot {
                taken: Arc::clone(&self.taken),
            })
            .map_err(|_| {
                format!(
                    "{limit} pipelines are running (or starting, or stopping), the most one connection may run; stop one first"
                )
            })
    }

    /// How many slots are taken: pipelines starting, running or stopping.
    #[cfg(test)]
    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }

    /// Keeps `launched` (which holds its [`Slot`]) under a new id; gives it back, with the
    /// reason, when the client already disconnected (the caller stops it).
    pub fn insert(&self, launched: Launched) -> Result<String, (Box<Launched>, String)> {
        let mut table = self.lock();
        if table.closed {
            return Err((
                Box::new(launched),
                "the client disconnected; the pipeline was stopped".to_owned(),
            ));
        }
        table.launched += 1;
        let id = format!("p{}", table.launched);
        table.running.insert(id.clone(), launched);
        Ok(id)
    }

    /// Runs `f` on the pipeline `id`, under the lock.
    pub fn with<R>(&self, id: &str, f: impl FnOnce(&Launched) -> R) -> Result<R, String> {
        let table = self.lock();
        match table.running.get(id) {
            Some(launched) => Ok(f(launched)),
            None => Err(unknown(id, &table)),
        }
    }

    /// Runs `f` on the pipeline `id` with mutable access, under the lock.
    #[cfg(feature = "ui")]
    pub fn with_mut<R>(&self, id: &str, f: impl FnOnce(&mut Launched) -> R) -> Result<R, String> {
        let mut table = self.lock();
        if !table.running.contains_key(id) {
            return Err(unknown(id, &table));
        }
        table
            .running
            .get_mut(id)
            .map(f)
            .ok_or_else(|| format!("no pipeline `{id}`"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bound_launches_until_their_work_ends() {
        let pipelines = Arc::new(Pipelines::default());
        let first = pipelines.reserve(2);
        let second = pipelines.reserve(2);
        assert!(first.is_ok() && second.is_ok());
        let refused = pipelines.reserve(2).err().unwrap_or_default();
        assert!(refused.contains("2 pipelines are running"), "{refused}");
        // A slot moved into work that outlives its call (abandoned) counts until it ends.
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let work = std::thread::spawn(move || {
            let _slot = second;
            finished.recv().ok();
        });
        assert!(
            pipelines.reserve(2).is_err(),
            "abandoned work still holds its slot"
        );
        finish.send(()).ok();
        work.join().ok();
        assert_eq!(pipelines.taken(), 1);
        let third = pipelines.reserve(2);
        assert!(third.is_ok());
        drop((first, third));
        assert_eq!(pipelines.taken(), 0);
    }
}
