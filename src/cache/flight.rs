//! Single flight: concurrent misses of one key wait for the first one's reply instead of
//! each running the statement.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Default)]
pub struct Flights {
    running: Mutex<HashMap<u64, watch::Receiver<bool>>>,
}

/// What a miss does: run the statement (holding the flight until dropped), or wait.
pub enum Flight {
    Lead(Lead),
    Wait(watch::Receiver<bool>),
}

/// The running miss of a key: others wait until it is dropped (stored, failed or
/// cancelled alike).
pub struct Lead {
    flights: Arc<crate::cache::ResultCache>,
    hash: u64,
    done: watch::Sender<bool>,
}

impl Drop for Lead {
    fn drop(&mut self) {
        self.flights.flights.running.lock().remove(&self.hash);
        let _ = self.done.send(true);
    }
}

impl crate::cache::ResultCache {
    /// Joins the flight of `hash`, leading it when none runs.
    pub fn flight(self: &Arc<Self>, hash: u64) -> Flight {
        let mut running = self.flights.running.lock();
        if let Some(rx) = running.get(&hash) {
            return Flight::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(false);
        running.insert(hash, rx);
        Flight::Lead(Lead {
            flights: self.clone(),
            hash,
            done: tx,
        })
    }

    /// Leads the flight of `hash` if none runs (a refresh ahead of expiry never waits).
    pub fn try_lead(self: &Arc<Self>, hash: u64) -> Option<Lead> {
        match self.flight(hash) {
            Flight::Lead(l) => Some(l),
            Flight::Wait(_) => None,
        }
    }
}

/// Waits for a flight to land, at most `limit`.
pub async fn wait(mut rx: watch::Receiver<bool>, limit: std::time::Duration) {
    let _ = crate::timer::timeout(limit, rx.wait_for(|d| *d)).await;
}
