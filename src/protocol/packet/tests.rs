use super::*;

#[tokio::test]
async fn split_and_join_large_packet() {
    let (a, b) = tokio::io::duplex(1 << 20);
    let payload: Vec<u8> = (0..(MAX_PAYLOAD * 2 + 10)).map(|i| i as u8).collect();
    let expected = payload.clone();
    let writer = tokio::spawn(async move {
        let mut w = PacketWriter::new(a);
        let mut seq = 0;
        w.write_packet(&mut seq, &payload).await.unwrap();
        w.flush().await.unwrap();
        seq
    });
    let mut r = PacketReader::new(b);
    let mut buf = Vec::new();
    let last = r.read_logical(&mut buf, usize::MAX).await.unwrap();
    assert_eq!(buf, expected);
    assert_eq!(last, 2);
    assert_eq!(writer.await.unwrap(), 3);
}

#[tokio::test]
async fn flush_now_writes_what_fits_and_flush_the_rest_in_order() {
    // a pipe with room for 10 bytes: a 4 + 30 byte packet cannot go at once
    let (a, mut b) = tokio::io::duplex(10);
    let mut w = PacketWriter::new(a);
    let payload: Vec<u8> = (0..30u8).collect();
    assert!(w.push_physical(3, &payload));
    assert!(!w.flush_now().unwrap(), "the pipe took only part");
    assert!(w.has_pending());
    let reader = tokio::spawn(async move {
        let mut got = vec![0u8; 34];
        b.read_exact(&mut got).await.unwrap();
        got
    });
    w.flush().await.unwrap();
    let got = reader.await.unwrap();
    assert_eq!(&got[..4], &[30, 0, 0, 3]);
    assert_eq!(&got[4..], &payload[..]);
    // with room, everything goes now
    let (a, mut b) = tokio::io::duplex(1024);
    let mut w = PacketWriter::new(a);
    assert!(w.push_physical(0, b"x"));
    assert!(w.flush_now().unwrap());
    assert!(!w.has_pending());
    let mut got = [0u8; 5];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(got, [1, 0, 0, 0, b'x']);
    // a closed peer is an error, not a silent drop
    drop(b);
    assert!(w.push_physical(1, b"y"));
    assert!(w.flush_now().is_err());
}

#[tokio::test]
async fn write_now_writes_what_fits_and_buffers_the_rest_in_order() {
    // a pipe with room for 10 bytes: 34 bytes of packets cannot go at once
    let (a, mut b) = tokio::io::duplex(10);
    let mut w = PacketWriter::new(a);
    let mut packets = vec![30, 0, 0, 1];
    packets.extend(0..30u8);
    w.write_now(&packets);
    assert!(
        w.has_pending(),
        "the pipe took only part; the rest is buffered"
    );
    let reader = tokio::spawn(async move {
        let mut got = vec![0u8; 34];
        b.read_exact(&mut got).await.unwrap();
        got
    });
    w.flush().await.unwrap();
    assert_eq!(reader.await.unwrap(), packets);
    // with room, everything goes at once
    let (a, mut b) = tokio::io::duplex(1024);
    let mut w = PacketWriter::new(a);
    w.write_now(&packets);
    assert!(!w.has_pending());
    let mut got = vec![0u8; 34];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(got, packets);
    // a closed peer: kept, and the flush reports it
    drop(b);
    w.write_now(&packets);
    assert!(w.flush().await.is_err());
}

/// One packet straight from the caller's payload: a stream that takes part of it (a pipe
/// of 10 bytes; the duplex writes one slice at a time, as a short vectored write would) gets
/// the rest, header or payload, in order on `flush`; one with room takes it all at once; a
/// packet behind buffered bytes waits its turn.
#[tokio::test]
async fn write_packet_now_sends_header_and_payload_in_order() {
    let payload: Vec<u8> = (0..30u8).collect();
    let mut want = vec![30, 0, 0, 5];
    want.extend_from_slice(&payload);
    for room in [2, 10, 1024] {
        let (a, mut b) = tokio::io::duplex(room);
        let mut w = PacketWriter::new(a);
        let done = w.write_packet_now(5, &payload).unwrap().unwrap();
        assert_eq!(done, !w.has_pending(), "room {room}");
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 34];
            b.read_exact(&mut got).await.unwrap();
            got
        });
        w.flush().await.unwrap();
        assert_eq!(reader.await.unwrap(), want, "room {room}");
    }
    let (a, mut b) = tokio::io::duplex(1024);
    let mut w = PacketWriter::new(a);
    assert!(w.push_physical(4, b"first"));
    assert!(w.write_packet_now(5, &payload).unwrap().unwrap());
    let mut got = vec![0u8; 9 + 34];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(&got[..9], b"\x05\0\0\x04first");
    assert_eq!(&got[9..], &want[..]);
    let big = vec![0u8; super::FLUSH_AT];
    assert_eq!(w.write_packet_now(6, &big).unwrap(), None, "too large");
}

#[tokio::test]
async fn exact_multiple_gets_empty_trailer() {
    let (a, b) = tokio::io::duplex(1 << 20);
    let payload = vec![7u8; MAX_PAYLOAD];
    tokio::spawn(async move {
        let mut w = PacketWriter::new(a);
        let mut seq = 0;
        w.write_packet(&mut seq, &payload).await.unwrap();
        w.write_packet(&mut seq, b"next").await.unwrap();
        w.flush().await.unwrap();
    });
    let mut r = PacketReader::new(b);
    let mut buf = Vec::new();
    r.read_logical(&mut buf, usize::MAX).await.unwrap();
    assert_eq!(buf.len(), MAX_PAYLOAD);
    r.read_logical(&mut buf, usize::MAX).await.unwrap();
    assert_eq!(buf, b"next");
}

#[tokio::test]
async fn too_large_is_drained() {
    let (a, b) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut w = PacketWriter::new(a);
        let mut seq = 0;
        w.write_packet(&mut seq, &[1u8; 5000]).await.unwrap();
        let mut seq = 0;
        w.write_packet(&mut seq, b"ok").await.unwrap();
        w.flush().await.unwrap();
    });
    let mut r = PacketReader::new(b);
    let mut buf = Vec::new();
    assert!(matches!(
        r.read_logical(&mut buf, 1000).await,
        Err(ReadError::TooLarge { .. })
    ));
    r.read_logical(&mut buf, 1000).await.unwrap();
    assert_eq!(buf, b"ok");
}
