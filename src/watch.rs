//! Reloads the configuration when its file changes (editors often replace the file, so the
//! folder is watched and events are filtered by name, then debounced).

use crate::shared::Shared;
use notify::{RecursiveMode, Watcher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

const DEBOUNCE: Duration = Duration::from_millis(150);

pub fn spawn(shared: Arc<Shared>, path: PathBuf) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let file_name = path.file_name().map(|n| n.to_os_string());
        let handler = move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                let ours = ev
                    .paths
                    .iter()
                    .any(|p| p.file_name().map(|n| n.to_os_string()) == file_name);
                if ours && (ev.kind.is_modify() || ev.kind.is_create()) {
                    let _ = tx.send(());
                }
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the configuration file; reload with SIGHUP or POST /reload");
                return;
            }
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the configuration folder");
            return;
        }
        let mut stop = shared.stop.clone();
        loop {
            tokio::select! {
                got = rx.recv() => {
                    if got.is_none() {
                        return;
                    }
                    // let the writer finish, and fold bursts of events into one reload
                    crate::timer::sleep(DEBOUNCE).await;
                    while rx.try_recv().is_ok() {}
                    crate::reload::from_file(&shared, "file").await;
                }
                _ = stop.changed() => return,
            }
        }
    })
}
