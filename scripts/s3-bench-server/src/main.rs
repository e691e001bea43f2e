//! `s3-bench-server ROOT [--delay-ms N]`: an S3-compatible server for benchmarks only.
//!
//! s3s-fs (the server the tests use) leaves Nagle's algorithm on for the sockets it accepts, so
//! every GET with a body waits ~40 ms for the client's delayed ACK, however small the object.
//! Real S3 has no such stall, but it has a first-byte latency of its own (AWS quotes medians of
//! "tens of milliseconds" for small requests). This server keeps s3s-fs's storage, turns Nagle
//! off, and can add a fixed delay to every request, so a benchmark can show both a loopback
//! server and an emulated distant one. It listens on 127.0.0.1, on a free port, with the
//! access key `ak` and secret `sk`, and prints `server is running at http://ADDR`.

use std::time::Duration;

use hyper::service::{service_fn, Service};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut root = None;
    let mut delay = Duration::ZERO;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--delay-ms" => delay = Duration::from_millis(args.next().ok_or("--delay-ms needs a value")?.parse()?),
            _ => root = Some(a),
        }
    }
    let root = root.ok_or("usage: s3-bench-server ROOT [--delay-ms N]")?;
    let mut builder = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).map_err(|e| format!("{e:?}"))?);
    builder.set_auth(s3s::auth::SimpleAuth::from_single("ak", "sk"));
    let s3 = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("server is running at http://{}", listener.local_addr()?);
    loop {
        let (socket, _) = listener.accept().await?;
        socket.set_nodelay(true)?;
        let s3 = s3.clone();
        let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let s3 = s3.clone();
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Service::call(&s3, req).await
            }
        });
        tokio::spawn(async move {
            let _ = Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(socket), svc).await;
        });
    }
}
