//! The reload watcher: polls the scenario folder's `*.toml` and `*.xml` files (names, sizes,
//! modification times) every [`POLL_INTERVAL`] and reloads when anything changed.
//!
//! Polling rather than the `notify` crate: one small folder, a change picked up within a
//! quarter second, no dependency, no platform differences (inotify, FSEvents, network and
//! container-mounted folders where events do not arrive), and editors that save by rename are
//! seen like any other change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::app::App;

/// How often the folder is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What the watcher compares between two looks.
pub type Snapshot = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The rule and template files of `dir`, sorted, with their sizes and modification times.
pub fn snapshot(dir: &Path) -> Snapshot {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let relevant = path
                .extension()
                .is_some_and(|extension| extension == "toml" || extension == "xml");
            if !relevant {
                continue;
            }
            if let Ok(metadata) = entry.metadata() {
                files.push((path, metadata.len(), metadata.modified().ok()));
            }
        }
    }
    files.sort();
    files
}

/// Watches `app`'s scenario folder until the returned task is aborted; does nothing when the
/// app has no folder.
pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    // The first look happens now, not when the task first runs, so that a change made in
    // between is not taken for the starting point.
    let dir = app.scenarios().dir().map(Path::to_owned);
    let first = dir.as_deref().map(snapshot);
    tokio::spawn(async move {
        let (Some(dir), Some(mut last)) = (dir, first) else {
            return;
        };
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let now = snapshot(&dir);
            if now != last {
                last = now;
                tracing::info!(dir = %dir.display(), "scenario files changed; reloading");
                app.reload_scenarios().await;
            }
        }
    })
}
