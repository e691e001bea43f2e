//! `cairn doctor`: one line per check, each failure with its fix in one sentence.
//!
//! Checks FUSE (the device, fusermount3, passthrough support; where FUSE cannot be used, says
//! so without failing: the socket serves instead), the mount, which door the wrapper uses, and
//! with S3
//! configured: the endpoint is reachable, TLS, credentials and region (a signed call to the
//! bucket), the bucket exists, and put/get/delete work (with a probe object it removes). With
//! a remote execution engine configured: it is reachable, speaks what its scheme says (gRPC
//! in plain HTTP/2 or in TLS), knows the instance, and can execute with SHA-256 digests.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use crate::config::RemoteExecConfig;
use crate::daemon::mounts::{self, MountState};
use crate::key::Key;
use crate::reapi::client::{Address, Engine, EngineErrorKind};
use crate::remote::probe::{host_port, speaks_plain_http, speaks_tls};
use crate::remote::s3::{classify, S3Config, S3Remote};
use crate::remote::{Remote, RemoteErrorKind};

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found (ok) or what is wrong and how to fix it (failed).
    pub detail: String,
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, ok: true, detail: detail.into() }
}

fn fail(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, ok: false, detail: detail.into() }
}

/// Runs every check that applies.
pub fn run(mountpoint: &Path, store: &Path, s3: Option<&S3Config>, remote: Option<&RemoteExecConfig>) -> Vec<Check> {
    let mut v = match mounts::fuse_unusable() {
        None => vec![fuse_device(), fusermount(), passthrough()],
        // Not a failure: the cache works without FUSE, through the daemon's socket.
        Some(why) => vec![ok(
            "fuse",
            format!("cannot mount here: {why}; the daemon serves its socket instead (docs/containers.md)"),
        )],
    };
    v.push(mount(mountpoint));
    v.push(door(mountpoint, store));
    if let Some(cfg) = s3 {
        v.extend(s3_checks(cfg));
    }
    if let Some(cfg) = remote {
        v.extend(remote_exec_checks(cfg));
    }
    v
}

/// The engine: reachable, the right scheme, the instance known, execution with SHA-256.
pub fn remote_exec_checks(cfg: &RemoteExecConfig) -> Vec<Check> {
    const NAME: &str = "remote-exec";
    let mut v = Vec::new();
    let addr = match Address::parse(&cfg.address) {
        Ok(a) => a,
        Err(e) => {
            return vec![fail(NAME, format!("{e} (--remote-exec, CAIRN_REMOTE_EXEC or remote_exec in config.toml)"))]
        }
    };
    let (host, port) = match addr.authority.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']').to_string(), p),
        None => (addr.authority.clone(), if addr.tls { 443 } else { 80 }),
    };
    let sock = (host.as_str(), port).to_socket_addrs().ok().and_then(|mut a| a.next());
    if sock.is_none_or(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_err()) {
        v.push(fail(NAME, format!("cannot connect to {addr}: check the address and port and that the engine runs")));
        return v;
    }
    let tls = speaks_tls(&host, port);
    if addr.tls && !tls {
        v.push(fail(NAME, format!("{addr} does not speak TLS: write the address as grpc://{}", addr.authority)));
        return v;
    }
    if !addr.tls && tls {
        v.push(fail(NAME, format!("{addr} speaks TLS: write the address as grpcs://{}", addr.authority)));
        return v;
    }
    match Engine::connect(&cfg.address, &cfg.instance, &cfg.headers) {
        Ok((engine, caps)) => {
            let batch = caps.cache_capabilities.as_ref().map_or(0, |c| c.max_batch_total_size_bytes);
            let api = |s: &Option<crate::reapi::proto::SemVer>| {
                s.as_ref().map_or("?".to_string(), |s| format!("{}.{}", s.major, s.minor))
            };
            v.push(ok(
                NAME,
                format!(
                    "{addr} instance {:?}: executes, takes SHA-256, batches up to {} bytes, API {}–{}",
                    engine.instance,
                    batch,
                    api(&caps.low_api_version),
                    api(&caps.high_api_version)
                ),
            ));
        }
        Err(e) => {
            let names: Vec<&str> =
                cfg.headers.iter().filter_map(|h| h.split_once(':')).map(|(n, _)| n.trim()).collect();
            let refused = format!(
                "it refused the headers sent ({}): check the token or key, and that it has not expired",
                names.join(", ")
            );
            let fix = match e.kind {
                EngineErrorKind::Denied if cfg.headers.is_empty() => "no header was sent",
                EngineErrorKind::Denied => refused.as_str(),
                EngineErrorKind::UnknownInstance => "the engine does not know this instance: set --remote-instance (CAIRN_REMOTE_INSTANCE) to one it serves",
                EngineErrorKind::Unsuitable => "cairn needs an engine with execution on and SHA-256 digests",
                EngineErrorKind::Unreachable => "check the address and that it is a gRPC (REAPI) port, not an HTTP one",
                _ => "see the engine's log",
            };
            v.push(fail(NAME, format!("{e}: {fix}")));
        }
    }
    v
}

fn fuse_device() -> Check {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        Ok(_) => ok("fuse device", "/dev/fuse opens for reading and writing"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(
            "fuse device",
            "/dev/fuse is missing: load the module (modprobe fuse) or, in a container, pass --device /dev/fuse",
        ),
        Err(e) => fail("fuse device", format!("/dev/fuse cannot be opened ({e}): run as a user allowed to use FUSE")),
    }
}

fn fusermount() -> Check {
    match std::process::Command::new("fusermount3").arg("-V").output() {
        Ok(o) => ok("fusermount3", String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Err(_) => fail("fusermount3", "fusermount3 is not installed: apt-get install fuse3"),
    }
}

fn passthrough() -> Check {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let root = nix::unistd::geteuid().is_root();
    match ((major, minor) >= (6, 9), root) {
        (true, true) => ok("passthrough", format!("kernel {} supports FUSE passthrough", release.trim())),
        (true, false) => ok(
            "passthrough",
            format!("kernel {} supports it, but it needs CAP_SYS_ADMIN; reads go through the daemon (slower, still correct)", release.trim()),
        ),
        (false, _) => ok(
            "passthrough",
            format!("kernel {} is older than 6.9: reads go through the daemon (slower, still correct)", release.trim()),
        ),
    }
}

fn mount(mp: &Path) -> Check {
    match mounts::state(mp) {
        MountState::Live => ok("mount", format!("cairn is mounted at {}", mp.display())),
        MountState::NotMounted => {
            ok("mount", format!("nothing mounted at {} (cairn start mounts it where FUSE works)", mp.display()))
        }
        MountState::Dead => fail(
            "mount",
            format!("{} is a dead cairn mount (daemon killed): run cairn umount, then cairn start", mp.display()),
        ),
        MountState::Other => {
            fail("mount", format!("something else is mounted at {}: choose another mount point", mp.display()))
        }
    }
}

/// Which door the wrapper will use, and why.
fn door(mp: &Path, store: &Path) -> Check {
    let socket = crate::protocol::wire::socket_path(store);
    match crate::engine::door::Door::at(Some(mp), Some(store)) {
        Some(d @ crate::engine::door::Door::Mount(_)) => {
            ok("door", format!("the wrapper uses the {}; the daemon also serves {}", d.describe(), socket.display()))
        }
        Some(d) => {
            let why = crate::admin::why_no_mount(&d).unwrap_or_else(|| "unknown".into());
            ok("door", format!("no mount; the wrapper uses the daemon's socket {} (why: {why})", socket.display()))
        }
        None if socket.exists() => {
            ok("door", format!("{} is left from a daemon that stopped; the next start replaces it", socket.display()))
        }
        None => ok("door", "no daemon running: the wrapper starts one (`cairn start` does it now)"),
    }
}

fn s3_checks(cfg: &S3Config) -> Vec<Check> {
    let endpoint = cfg.endpoint_label();
    let mut v = Vec::new();
    // 1. Reachable at all (a TCP connection), 2. speaking the protocol the scheme says.
    if let Some((host, port)) = host_port(&endpoint) {
        let addr = (host.as_str(), port).to_socket_addrs().ok().and_then(|mut a| a.next());
        if addr.is_none_or(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_err()) {
            v.push(fail(
                "s3 endpoint",
                format!("cannot connect to {endpoint}: check the address and port and that the server runs (--s3-endpoint or AWS_ENDPOINT_URL)"),
            ));
            return v;
        }
        v.push(ok("s3 endpoint", format!("{host}:{port} accepts connections")));
        // A TLS front may answer a plain request in plain HTTP too (nginx's 400 "plain HTTP
        // request sent to HTTPS port"): only a port that does not speak TLS is plain.
        if endpoint.starts_with("https://") && speaks_plain_http(&host, port) && !speaks_tls(&host, port) {
            v.push(fail(
                "s3 tls",
                format!("{endpoint} speaks plain HTTP, not HTTPS: write the endpoint as http://{host}:{port}"),
            ));
            return v;
        }
        if endpoint.starts_with("http://") && !speaks_plain_http(&host, port) && speaks_tls(&host, port) {
            v.push(fail(
                "s3 tls",
                format!("{endpoint} speaks HTTPS (TLS), not plain HTTP: write the endpoint as https://{host}:{port}"),
            ));
            return v;
        }
    }
    let remote = match S3Remote::new(cfg) {
        Ok(r) => r,
        Err(e) => {
            v.push(fail("s3 client", e.explain(&cfg.bucket, &endpoint)));
            return v;
        }
    };
    // 3. Credentials, region and the bucket: one signed call. A listing rather than a HEAD,
    // since only an answer with a body names the cause (NoSuchBucket, the expected region).
    let (rt, client, bucket) = remote.parts();
    let listed = rt.block_on(client.list_objects_v2().bucket(bucket).prefix(&cfg.prefix).max_keys(1).send());
    match listed {
        Ok(_) => v.push(ok("s3 bucket", format!("bucket {bucket} exists and the credentials are accepted"))),
        Err(e) => {
            let err = remote.refine(classify(e));
            let name = match err.kind {
                RemoteErrorKind::Denied | RemoteErrorKind::NoCredentials => "s3 credentials",
                RemoteErrorKind::WriteDenied => "s3 put",
                RemoteErrorKind::WrongRegion | RemoteErrorKind::BadRequest => "s3 region",
                RemoteErrorKind::Tls => "s3 tls",
                RemoteErrorKind::Unreachable => "s3 endpoint",
                RemoteErrorKind::NoBucket | RemoteErrorKind::Other => "s3 bucket",
            };
            v.push(fail(name, err.explain(bucket, &endpoint)));
            return v;
        }
    }
    // 4. The signing key, if any.
    if let Some(path) = &cfg.signing_key {
        match crate::remote::sign::Signer::from_file(path) {
            Ok(_) => v.push(ok(
                "s3 signing",
                format!("uploads are signed with {}, and only objects signed with it are taken", path.display()),
            )),
            Err(e) => v.push(fail("s3 signing", e.to_string())),
        }
    }
    // 5. Put, get, delete a probe object; a read-only machine only reads.
    if cfg.read_only {
        let absent = Key::of_bytes(format!("cairn doctor read probe {}", std::process::id()).as_bytes());
        match remote.get(&absent) {
            Ok(_) => v.push(ok("s3 read", "reads work; read-only, so writes are not tried")),
            Err(e) => v.push(fail("s3 read", e.explain(bucket, &endpoint))),
        }
        return v;
    }
    let probe = Key::of_bytes(format!("cairn doctor probe {}", std::process::id()).as_bytes());
    let bytes = b"cairn doctor probe".to_vec();
    let sum = *blake3::hash(&bytes).as_bytes();
    let steps = remote
        .put(&probe, &bytes, &sum, None)
        .map_err(|e| ("s3 put", e))
        .and_then(|()| remote.get(&probe).map_err(|e| ("s3 get", e)))
        .and_then(|got| {
            if got.as_ref().map(|o| &o.bytes) == Some(&bytes) {
                Ok(())
            } else {
                Err((
                    "s3 get",
                    crate::remote::RemoteError::new(RemoteErrorKind::Other, "the probe object came back different"),
                ))
            }
        })
        .and_then(|()| remote.delete(&probe).map_err(|e| ("s3 delete", e)));
    match steps {
        Ok(()) => v.push(ok("s3 read/write", "put, get and delete of a probe object work")),
        Err((name, e)) => {
            let _ = remote.delete(&probe);
            v.push(fail(name, e.explain(bucket, &endpoint)));
        }
    }
    v
}
