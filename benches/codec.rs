//! Packet codec and relay cost without network: framing a packet, and relaying a result set
//! (same framing, and with EOF translation) through in-memory pipes.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::protocol::packet::{PacketReader, PacketWriter};
use sluice::protocol::relay::{Expect, Relay};
use sluice::protocol::reply;
use std::hint::black_box;

fn result_set(rows: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut seq = 1u8;
    let mut push = |p: &[u8]| {
        let l = p.len() as u32;
        wire.extend_from_slice(&[l as u8, (l >> 8) as u8, (l >> 16) as u8, seq]);
        wire.extend_from_slice(p);
        seq = seq.wrapping_add(1);
    };
    push(&[1]);
    push(b"\x03def\x00\x00\x00\x01c\x00\x0c\x21\x00\x78\x00\x00\x00\xfe\x00\x00\x00\x00\x00");
    for i in 0..rows {
        let v = format!("{:0>120}", i);
        let mut row = vec![v.len() as u8];
        row.extend_from_slice(v.as_bytes());
        push(&row);
    }
    push(&reply::ok_terminator(2, 0));
    wire
}

fn relay_once(rt: &tokio::runtime::Runtime, wire: &[u8], client_eof: bool) -> usize {
    rt.block_on(async {
        let mut br = PacketReader::new(wire);
        let mut bw = PacketWriter::new(tokio::io::sink());
        let mut cw = PacketWriter::new(tokio::io::sink());
        let mut buf = Vec::with_capacity(256);
        let mut relay: Relay<'_, _, _, &[u8], _> = Relay::new(&mut br, &mut bw, true, &mut buf);
        relay.client_w = Some(&mut cw);
        relay.client_deprecate_eof = client_eof;
        relay.run(Expect::ResultSets).await.unwrap();
        relay.outcome.sent as usize
    })
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("codec");
    let payload = vec![7u8; 64];
    g.bench_function("write_packet_64b", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut w = PacketWriter::new(tokio::io::sink());
                let mut seq = 0;
                w.write_packet(&mut seq, black_box(&payload)).await.unwrap();
            })
        })
    });
    for rows in [1usize, 1000] {
        let wire = result_set(rows);
        g.throughput(Throughput::Elements(rows as u64));
        g.bench_function(format!("relay_{rows}_rows_same_framing"), |b| {
            b.iter(|| relay_once(&rt, black_box(&wire), true))
        });
        g.bench_function(format!("relay_{rows}_rows_eof_translation"), |b| {
            b.iter(|| relay_once(&rt, black_box(&wire), false))
        });
    }
    g.finish();
}

criterion_group!(codec_benches, benches);
criterion_main!(codec_benches);
