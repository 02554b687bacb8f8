//! Change-data-capture clients (`mariadb-binlog --read-from-remote-server`, Debezium,
//! Maxwell): COM_REGISTER_SLAVE and COM_BINLOG_DUMP(_GTID) go to the current primary, the
//! dump on the session's primary connection (where the client's `SET @master_binlog_checksum`
//! and `@slave_connect_state` ran), its stream relayed packet by packet, flushed as it comes.
//! The connection served a replication stream: it is closed afterwards, never pooled. After
//! a failover the client reconnects and resumes from its own position or GTID.

use super::inflight::reply_or_client_left;
use super::{Fatal, Session};
use crate::pool::Lease;
use crate::protocol::relay::Expect;
use crate::router::{Reason, Target};

/// How a relayed stream ended.
enum End {
    /// EOF (a non-blocking dump reached the end of the log) or ERR: relayed.
    Done,
    ClientLeft,
    Backend(std::io::Error),
}

impl Session {
    /// COM_REGISTER_SLAVE: answered by the primary.
    pub(super) async fn register_replica(&mut self, packet: &[u8]) -> Result<(), Fatal> {
        let intent = crate::router::classify(b"SHOW TABLES");
        let route = (Target::Primary, Reason::Session);
        let on_ok = super::exec::OnOk::Nothing;
        self.execute(packet, Expect::Single, route, &intent, on_ok)
            .await
    }

    /// COM_BINLOG_DUMP / COM_BINLOG_DUMP_GTID: the primary's stream, relayed until it ends.
    pub(super) async fn binlog_dump(&mut self, packet: &[u8]) -> Result<(), Fatal> {
        let intent = crate::router::classify(b"SHOW TABLES");
        let (_, mut lease) = match self.acquire(Target::Primary, &intent, None).await {
            Ok(x) => x,
            Err(e) => return self.send_err(&e).await,
        };
        if let Err(e) = self.align(&mut lease, intent.flags).await {
            let name = lease.pool().name.clone();
            lease.broken = true;
            return self.send_err(&e.to_sql_error(&name)).await;
        }
        // from here on the connection is the stream's: closed however it ends
        lease.broken = true;
        if let Err(e) = lease.send(packet).await {
            let name = lease.pool().name.clone();
            return self.send_err(&e.to_sql_error(&name)).await;
        }
        let end = self.relay_stream(&mut lease).await;
        drop(lease);
        match end {
            End::Done => Ok(()),
            End::ClientLeft => Err(Fatal::ClientLeft),
            End::Backend(e) => {
                let e = crate::error::SqlError::new(
                    1236,
                    "HY000",
                    format!("Sluice: the primary's binary log stream failed: {e}"),
                );
                self.send_err(&e).await
            }
        }
    }

    async fn relay_stream(&mut self, lease: &mut Lease) -> End {
        let mut buf = Vec::new();
        loop {
            match reply_or_client_left(&mut self.client_r, lease).await {
                Ok(true) => {}
                Ok(false) => return End::ClientLeft,
                Err(e) => return End::Backend(e),
            }
            let seq = match lease.r.read_physical(&mut buf).await {
                Ok(s) => s,
                Err(e) => return End::Backend(e),
            };
            let last = match buf.first() {
                Some(0xFF) => true,
                Some(0xFE) => buf.len() < 9,
                _ => false,
            };
            if self.client_w.write_physical(seq, &buf).await.is_err() {
                return End::ClientLeft;
            }
            self.seq = seq.wrapping_add(1);
            if (last || lease.r.buffered() == 0) && self.client_w.flush().await.is_err() {
                return End::ClientLeft;
            }
            if last {
                return End::Done;
            }
        }
    }
}
