//! Which protocol an endpoint's port speaks: plain HTTP or TLS.
//!
//! The SDK's errors for an `http://` endpoint that is really HTTPS ("connection closed before
//! message completed") read like a server that is down, and the fix is one letter. So when a
//! call fails that way, one short probe asks the port itself: a TLS ClientHello answered by a
//! TLS record means "write https://". `cairn doctor` uses the same probes.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Host and port of an endpoint URL (`http://host:port/…`), with the scheme's default port.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let hostport = rest.split('/').next()?;
    let default = if scheme == "http" { 80 } else { 443 };
    match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)),
        _ => Some((hostport.trim_matches(['[', ']']).to_string(), default)),
    }
}

fn connect(host: &str, port: u16) -> Option<TcpStream> {
    let addr = (host, port).to_socket_addrs().ok()?.next()?;
    let s = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).ok()?;
    s.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    s.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    Some(s)
}

/// The first bytes the port sends back after `hello`.
fn answer(host: &str, port: u16, hello: &[u8]) -> Vec<u8> {
    let Some(mut s) = connect(host, port) else { return Vec::new() };
    if s.write_all(hello).is_err() {
        return Vec::new();
    }
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

/// A minimal TLS 1.2 ClientHello (no extensions, two common cipher suites). A TLS server answers
/// it with a handshake record or an alert; either way the answer is TLS.
fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend((0u8..32).map(|i| i.wrapping_mul(37).wrapping_add(11)));
    body.push(0); // no session id
    body.extend([0x00, 0x04, 0xc0, 0x2f, 0x00, 0x9c]); // ECDHE-RSA-AES128-GCM, RSA-AES128-GCM
    body.extend([0x01, 0x00]); // no compression
    let mut hs = vec![0x01, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend(hs);
    rec
}

/// Whether bytes are the start of a TLS record (handshake or alert).
pub fn is_tls_record(b: &[u8]) -> bool {
    b.len() >= 2 && matches!(b[0], 0x15 | 0x16) && b[1] == 0x03
}

/// Whether the port answers a TLS ClientHello in TLS.
pub fn speaks_tls(host: &str, port: u16) -> bool {
    is_tls_record(&answer(host, port, &client_hello()))
}

/// Whether the port answers a plain HTTP request in plain HTTP.
pub fn speaks_plain_http(host: &str, port: u16) -> bool {
    answer(host, port, b"GET / HTTP/1.0\r\n\r\n").starts_with(b"HTTP/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_to_host_and_port() {
        assert_eq!(host_port("http://127.0.0.1:9000"), Some(("127.0.0.1".into(), 9000)));
        assert_eq!(host_port("https://s3.amazonaws.com"), Some(("s3.amazonaws.com".into(), 443)));
        assert_eq!(host_port("http://minio/"), Some(("minio".into(), 80)));
        assert_eq!(host_port("http://[::1]:3900"), Some(("::1".into(), 3900)));
        assert_eq!(host_port("minio:9000"), None);
    }

    #[test]
    fn a_plain_http_server_is_not_taken_for_tls_and_the_other_way_round() {
        // A one-shot server that answers whatever comes with `reply`.
        let serve = |reply: &'static [u8]| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            std::thread::spawn(move || {
                if let Ok((mut s, _)) = l.accept() {
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(reply);
                }
            });
            port
        };
        let http = serve(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        assert!(!speaks_tls("127.0.0.1", http));
        let http = serve(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        assert!(speaks_plain_http("127.0.0.1", http));
        let alert: &[u8] = &[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
        let tls = serve(alert);
        assert!(speaks_tls("127.0.0.1", tls));
        let tls = serve(alert);
        assert!(!speaks_plain_http("127.0.0.1", tls));
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(!speaks_tls("127.0.0.1", closed) && !speaks_plain_http("127.0.0.1", closed));
    }

    #[test]
    fn the_client_hello_is_a_well_formed_record() {
        let h = client_hello();
        assert_eq!(h[0], 0x16);
        assert_eq!(((h[3] as usize) << 8) + h[4] as usize, h.len() - 5);
        assert_eq!(((h[7] as usize) << 8) + h[8] as usize, h.len() - 9);
    }
}
