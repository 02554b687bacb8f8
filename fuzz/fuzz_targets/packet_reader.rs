//! Any byte stream from a peer: framing never panics and never buffers past the limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::protocol::packet::PacketReader;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let mut r = PacketReader::new(data);
        let mut buf = Vec::new();
        while r.read_logical(&mut buf, 1 << 16).await.is_ok() {
            assert!(buf.len() <= 1 << 16);
        }
    });
});
