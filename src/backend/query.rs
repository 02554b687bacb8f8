//! Text-protocol queries with decoded rows, for control-plane use only (monitor, harness,
//! admin). The client query path never decodes rows; see `protocol::relay`.

use super::{BackendConn, BackendError};
use crate::error::SqlError;
use crate::protocol::{cmd, lenenc, reply, MAX_PAYLOAD};

#[derive(Debug, Default, Clone)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub affected_rows: u64,
}

impl QueryResult {
    /// Value of `column` in the first row.
    pub fn get(&self, column: &str) -> Option<&str> {
        let i = self
            .columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(column))?;
        self.rows.first()?.get(i)?.as_deref()
    }
}

fn bad(msg: &str) -> BackendError {
    BackendError::Protocol(msg.into())
}

impl BackendConn {
    async fn read_packet(&mut self) -> Result<(), BackendError> {
        self.r.read_logical(&mut self.buf, usize::MAX).await?;
        Ok(())
    }

    /// Runs `sql` and returns the rows of its (last) result set. Multi-result responses are
    /// consumed entirely.
    pub async fn query(&mut self, sql: &str) -> Result<QueryResult, BackendError> {
        let mut p = Vec::with_capacity(sql.len() + 1);
        p.push(cmd::QUERY);
        p.extend_from_slice(sql.as_bytes());
        self.run(&p, true).await
    }

    /// Runs a COM_QUERY `packet`, reading its whole reply and keeping none of its rows.
    pub async fn run_discarding(&mut self, packet: &[u8]) -> Result<(), BackendError> {
        self.run(packet, false).await.map(|_| ())
    }

    async fn run(&mut self, packet: &[u8], keep: bool) -> Result<QueryResult, BackendError> {
        self.send(packet).await?;
        let mut result = QueryResult::default();
        let mut error = None;
        loop {
            self.read_packet().await?;
            let status = match self.buf.first().copied() {
                Some(0x00) => {
                    let ok = reply::parse_ok(&self.buf).ok_or_else(|| bad("short OK"))?;
                    result.affected_rows = ok.affected_rows;
                    ok.status
                }
                Some(0xFF) => {
                    error = Some(SqlError::from_packet(&self.buf));
                    break;
                }
                Some(0xFB) => return Err(bad("LOCAL INFILE is not allowed here")),
                _ => {
                    let mut pos = 0;
                    let n =
                        lenenc::read_int(&self.buf, &mut pos).ok_or_else(|| bad("column count"))?;
                    result = QueryResult::default();
                    self.read_result_set(n as usize, &mut result, keep).await?
                }
            };
            if status & crate::protocol::status::MORE_RESULTS == 0 {
                break;
            }
        }
        self.busy = false;
        match error {
            Some(e) => Err(BackendError::Server(e)),
            None => Ok(result),
        }
    }

    async fn read_result_set(
        &mut self,
        n: usize,
        out: &mut QueryResult,
        keep: bool,
    ) -> Result<u16, BackendError> {
        for _ in 0..n {
            self.read_packet().await?;
            // catalog, schema, table, org_table, name
            let mut pos = 0;
            for _ in 0..4 {
                lenenc::read_str(&self.buf, &mut pos).ok_or_else(|| bad("column definition"))?;
            }
            let name = lenenc::read_str(&self.buf, &mut pos)
                .flatten()
                .ok_or_else(|| bad("column name"))?;
            out.columns.push(String::from_utf8_lossy(name).into_owned());
        }
        if !self.deprecate_eof && n > 0 {
            self.read_packet().await?;
        }
        loop {
            self.read_packet().await?;
            let len = self.buf.len();
            match self.buf.first() {
                Some(0xFF) => {
                    let e = SqlError::from_packet(&self.buf);
                    self.busy = false;
                    return Err(BackendError::Server(e));
                }
                Some(0xFE) if (self.deprecate_eof && len < MAX_PAYLOAD) || len < 9 => {
                    return Ok(if self.deprecate_eof {
                        reply::parse_ok(&self.buf).map(|o| o.status).unwrap_or(0)
                    } else {
                        reply::parse_eof(&self.buf).map(|e| e.1).unwrap_or(0)
                    });
                }
                _ if !keep => {}
                _ => {
                    let mut pos = 0;
                    let mut row = Vec::with_capacity(n);
                    for _ in 0..n {
                        let v = lenenc::read_str(&self.buf, &mut pos)
                            .ok_or_else(|| bad("row value"))?;
                        row.push(v.map(|b| String::from_utf8_lossy(b).into_owned()));
                    }
                    out.rows.push(row);
                }
            }
        }
    }

    /// Runs `sql` and discards any rows.
    pub async fn exec(&mut self, sql: &str) -> Result<(), BackendError> {
        self.query(sql).await.map(|_| ())
    }
}
