//! COM_STMT_EXECUTE packets: parsing and statement-id rewriting never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::protocol::stmt;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let params = u16::from_le_bytes([data[0], data[1]]) % 64;
    let packet = &data[2..];
    let _ = stmt::statement_id(packet);
    let _ = stmt::layout(packet, params);
    let mut out = Vec::new();
    let _ = stmt::rewrite(packet, params, 7, None, &mut out);
    let types = vec![0x08u8, 0x00].repeat(params as usize);
    let _ = stmt::rewrite(packet, params, 7, Some(&types), &mut out);
});
