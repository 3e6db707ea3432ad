//! The WAL's upkeep: a checkpointer thread copies it into the database file off the writer,
//! and the writer catches up when it grows past its bound.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use rusqlite::Connection;

use super::open_connection;
use super::rows::backend;
use crate::store::StoreError;

/// How often the WAL is copied into the database file.
pub(super) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// What the checkpoint thread and the writer share: whether the writer should finish the last
/// pass off (the WAL is large), and a lock so only one of them checkpoints at a time.
#[derive(Default)]
pub(super) struct Wal {
    pub(super) catch_up: std::sync::atomic::AtomicBool,
    pub(super) checkpointing: Mutex<()>,
    /// Past this many frames the WAL is started over.
    pub(super) restart_frames: i64,
}

/// Starts the thread that checkpoints the WAL until the returned sender is dropped. Its
/// checkpoints are passive: they copy the WAL into the database without blocking anyone.
pub(super) fn spawn_checkpointer(
    path: &Path,
    wal: Arc<Wal>,
) -> Result<mpsc::Sender<()>, StoreError> {
    let conn = open_connection(path)?;
    let (stop, stopped) = mpsc::channel::<()>();
    thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                let _turn = wal.checkpointing.lock();
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                    Ok(frames) if frames > wal.restart_frames => wal
                        .catch_up
                        .store(true, std::sync::atomic::Ordering::Relaxed),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retried"),
                }
            }
        })
        .map_err(|e| backend(e.to_string()))?;
    Ok(stop)
}

/// Under a steady stream of commits a passive checkpoint never catches up with the last frame,
/// and SQLite only starts the WAL over (at the next write) once one has. So once the WAL is
/// large, right after the checkpoint thread's pass, the writer checkpoints passively itself
/// between two groups: it is the only writer, so it copies everything left (what was committed
/// since that pass), and its next transaction starts the WAL over; if a reader is still on an
/// older snapshot, the next pass tries again. It never waits for readers (a restarting
/// checkpoint could, in SQLite's busy handler, which sleeps in steps of milliseconds). It still
/// costs the writer the checkpoint's syncs: 5 to 9 ms measured here (ext4), twice a second at
/// 50,000 events/s: the largest stall left on the usage hot path (docs/usage.md).
pub(super) fn catch_up_wal(conn: &Connection, wal: &Wal) {
    use std::sync::atomic::Ordering::Relaxed;
    if !wal.catch_up.load(Relaxed) {
        return;
    }
    let Ok(_turn) = wal.checkpointing.try_lock() else {
        return;
    };
    wal.catch_up.store(false, Relaxed);
    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    if let Err(e) = done {
        tracing::warn!(error = %e, "WAL checkpoint failed; retried");
    }
}
