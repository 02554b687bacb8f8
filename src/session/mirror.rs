//! `mirror = "group:NAME"`: copies of a session's statements run on a member of the group,
//! their results discarded. Each session has one worker task per mirrored group, fed through
//! a bounded channel: the session never waits for it (`try_send`); a copy that finds the
//! channel full, no member to run on, or fails there is dropped and counted.

use crate::backend::ConnectOpts;
use crate::rules::Group;
use crate::shared::Shared;
use crate::topology::ReadNeeds;
use prometheus::IntCounter;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Copies waiting per session and group before new ones are dropped.
const QUEUE: usize = 64;
/// A copy still running after this long is abandoned (its connection closed).
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// One statement to mirror.
pub struct Copy {
    /// The COM_QUERY packet.
    pub packet: Arc<[u8]>,
    pub database: Option<String>,
    pub group: Arc<Group>,
    /// The rule's `mirror_dropped` counter.
    pub dropped: IntCounter,
}

impl Copy {
    fn drop_counted(&self) {
        self.group.mirror_dropped.inc();
        self.dropped.inc();
    }
}

/// What a worker needs to open connections as the session's user.
pub struct Worker {
    pub shared: Arc<Shared>,
    /// The session's connection options (address, TLS and database are set per copy).
    pub opts: ConnectOpts,
    /// The session's pool slot.
    pub slot: usize,
}

/// A session's mirror workers, by group name (closed with the session).
#[derive(Default)]
pub struct Mirrors {
    queues: Vec<(Arc<str>, mpsc::Sender<Copy>)>,
}

impl Mirrors {
    /// Queues `copy` without waiting; `false` if it was dropped. `worker` makes the group's
    /// worker on first use.
    pub fn send(&mut self, copy: Copy, worker: impl FnOnce() -> Worker) -> bool {
        let name = copy.group.name.clone();
        let i = match self.queues.iter().position(|(g, _)| *g == name) {
            Some(i) => i,
            None => {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(worker(), rx));
                self.queues.push((name, tx));
                self.queues.len() - 1
            }
        };
        match self.queues[i].1.try_send(copy) {
            Ok(()) => true,
            Err(e) => {
                let copy = match e {
                    mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
                };
                copy.drop_counted();
                false
            }
        }
    }
}

async fn run(w: Worker, mut rx: mpsc::Receiver<Copy>) {
    while let Some(copy) = rx.recv().await {
        match crate::timer::timeout(RUN_LIMIT, one(&w, &copy)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(group = %copy.group.name, error = %e, "mirror copy failed");
                copy.drop_counted();
            }
            Err(_) => copy.drop_counted(),
        }
    }
}

async fn one(w: &Worker, copy: &Copy) -> Result<(), String> {
    let topo = &w.shared.topology;
    let needs = ReadNeeds {
        members: Some(&copy.group.members),
        ..Default::default()
    };
    let idx = topo
        .pick_replica(None, &needs, false)
        .ok_or("no member of the group can take it")?;
    let be = topo.backend(idx);
    let opts = || ConnectOpts {
        address: be.pool.address.clone(),
        tls: be.pool.tls(),
        database: copy.database.clone(),
        ..w.opts.clone()
    };
    // affinity 0: no session's (ids start at 1)
    let mut lease = be
        .pool
        .checkout((w.slot, 0), opts, || Duration::ZERO)
        .await
        .map_err(|e| e.to_string())?;
    if lease.state.database != copy.database {
        if let Some(db) = &copy.database {
            lease.init_db(db).await.map_err(|e| e.to_string())?;
        }
    }
    let r = lease.run_discarding(&copy.packet).await;
    if let Err(e) = &r {
        if e.is_fatal() {
            lease.discard();
        }
    }
    r.map_err(|e| e.to_string())
}
