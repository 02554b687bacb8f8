//! A bare TCP forwarder on tokio, for the benchmark's floor: one single-threaded event loop
//! with I/O only (as a Sluice worker), each client copied to and from its own backend
//! connection by `tokio::io::copy_bidirectional`, nothing looked at. `bench/callgrind.sh`
//! measures it beside haproxy `mode tcp` and Sluice: what one extra hop costs on tokio
//! before any L7 work.
//!
//! cargo run --release --example l4_forward -- 127.0.0.1:LISTEN_PORT 127.0.0.1:BACKEND_PORT

use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(backend)) = (args.next(), args.next()) else {
        eprintln!("usage: l4_forward LISTEN_ADDR BACKEND_ADDR");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&listen).await?;
        loop {
            let (mut client, _) = listener.accept().await?;
            let backend = backend.clone();
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    })
}
