//! A real distributed S3 engine for the tests: a 3-node Garage cluster on 127.0.0.1 with
//! replication factor 3, installed by scripts/setup (`cargo install garage`). Each cluster has
//! one bucket, a writer key and a read-only key, and lives in a temporary folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{wait_until, Mount};

/// Garage's region: requests signed for another are refused with 400.
pub const REGION: &str = "garage";

/// A running cluster.
pub struct Garage {
    dir: tempfile::TempDir,
    nodes: Vec<Option<Child>>,
    /// Each node's S3 endpoint (`http://127.0.0.1:port`).
    pub endpoints: Vec<String>,
    pub bucket: String,
    writer: (String, String),
    reader: (String, String),
}

/// The garage binary: `GARAGE_BIN`, else ~/.cargo/bin/garage (scripts/setup installs it).
fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("GARAGE_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cargo"));
    let p = home.join("bin/garage");
    assert!(p.exists(), "garage is not installed: run scripts/setup (it installs it with cargo install)");
    p
}

/// Ports nobody listens on now (held together while chosen, so they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// 64 hex digits that differ between runs.
fn hex_secret(label: &str) -> String {
    let seed = format!("{label} {} {:?}", std::process::id(), std::time::SystemTime::now());
    blake3::hash(seed.as_bytes()).to_hex().to_string()
}

impl Garage {
    /// Starts three nodes, joins them, applies a layout with replication factor 3, and creates
    /// the bucket and the keys. The ports are chosen free, then released for Garage to bind: if
    /// another test took one meanwhile, a node exits at once, and the cluster is started again
    /// on new ports.
    pub fn start(bucket: &str) -> Garage {
        for _ in 0..3 {
            if let Some(g) = Garage::try_start(bucket) {
                return g;
            }
        }
        panic!("garage did not start three times in a row (see the node logs above)");
    }

    fn try_start(bucket: &str) -> Option<Garage> {
        let dir = tempfile::Builder::new().prefix("cairn-garage-").tempdir().unwrap();
        let ports = free_ports(9);
        let rpc_secret = hex_secret("rpc");
        let mut g = Garage {
            dir,
            nodes: Vec::new(),
            endpoints: Vec::new(),
            bucket: bucket.to_string(),
            writer: (format!("GK{}", &hex_secret("writer id")[..24]), hex_secret("writer secret")),
            reader: (format!("GK{}", &hex_secret("reader id")[..24]), hex_secret("reader secret")),
        };
        for n in 0..3 {
            let (s3, rpc, admin) = (ports[3 * n], ports[3 * n + 1], ports[3 * n + 2]);
            let home = g.dir.path().join(format!("node{n}"));
            std::fs::create_dir_all(&home).unwrap();
            let h = home.display();
            std::fs::write(
                home.join("garage.toml"),
                format!(
                    "metadata_dir = \"{h}/meta\"\ndata_dir = \"{h}/data\"\ndb_engine = \"sqlite\"\n\
                     metadata_fsync = false\ndata_fsync = false\nreplication_factor = 3\n\
                     consistency_mode = \"consistent\"\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                     rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{rpc_secret}\"\n\n\
                     [s3_api]\napi_bind_addr = \"127.0.0.1:{s3}\"\ns3_region = \"{REGION}\"\n\n\
                     [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n"
                ),
            )
            .unwrap();
            g.endpoints.push(format!("http://127.0.0.1:{s3}"));
            g.nodes.push(Some(g.spawn(n)));
        }
        for n in 0..3 {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while g.try_cli(n, &["status"]).is_none() {
                let exited = g.nodes[n].as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some());
                if exited {
                    let log = std::fs::read_to_string(g.dir.path().join(format!("node{n}/garage.log")));
                    println!("garage node {n} exited at start (a port taken?):\n{}", log.unwrap_or_default());
                    return None;
                }
                assert!(std::time::Instant::now() < deadline, "timed out waiting for garage node {n} to answer");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        let ids: Vec<String> = (0..3).map(|n| g.cli(n, &["node", "id", "-q"]).trim().to_string()).collect();
        for id in &ids[1..] {
            g.cli(0, &["node", "connect", id]);
        }
        for id in &ids {
            let short = id.split('@').next().unwrap();
            g.cli(0, &["layout", "assign", "-z", "dc1", "-c", "1G", short]);
        }
        g.cli(0, &["layout", "apply", "--version", "1"]);
        for n in 0..3 {
            wait_until(60, "the cluster to be healthy on every node", || {
                g.try_cli(n, &["json-api", "GetClusterHealth"])
                    .and_then(|out| serde_json::from_str::<serde_json::Value>(&out).ok())
                    .is_some_and(|v| v["status"] == "healthy")
            });
        }
        let (wid, wsec) = g.writer.clone();
        let (rid, rsec) = g.reader.clone();
        g.cli(0, &["key", "import", "-n", "writer", "--yes", &wid, &wsec]);
        g.cli(0, &["key", "import", "-n", "reader", "--yes", &rid, &rsec]);
        g.cli(0, &["bucket", "create", bucket]);
        g.cli(0, &["bucket", "allow", "--read", "--write", "--owner", bucket, "--key", "writer"]);
        g.cli(0, &["bucket", "allow", "--read", bucket, "--key", "reader"]);
        Some(g)
    }

    fn config(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("node{n}/garage.toml"))
    }

    fn spawn(&self, n: usize) -> Child {
        let log = std::fs::File::create(self.dir.path().join(format!("node{n}/garage.log"))).unwrap();
        Command::new(binary())
            .arg("-c")
            .arg(self.config(n))
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting garage")
    }

    /// Runs `garage <args>` against node `n`: its output if it succeeds.
    fn try_cli(&self, n: usize, args: &[&str]) -> Option<String> {
        let out = Command::new(binary()).arg("-c").arg(self.config(n)).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `garage <args>` against node `n`; panics with its output if it fails.
    fn cli(&self, n: usize, args: &[&str]) -> String {
        let out = Command::new(binary()).arg("-c").arg(self.config(n)).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills node `n` (SIGKILL, as a crash would).
    pub fn kill_node(&mut self, n: usize) {
        if let Some(mut c) = self.nodes[n].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills every node: the endpoint then refuses connections.
    pub fn kill_all(&mut self) {
        (0..self.nodes.len()).for_each(|n| self.kill_node(n));
    }

    /// Credentials of the writer key, as the AWS standard chain reads them.
    pub fn env(&self) -> Vec<(String, String)> {
        creds(&self.writer, REGION)
    }

    /// Credentials of the key that may only read the bucket.
    pub fn reader_env(&self) -> Vec<(String, String)> {
        creds(&self.reader, REGION)
    }

    /// Mounts with the writer key, through node `n`.
    pub fn mount(&self, test: &str, store: Option<&Path>, n: usize) -> Option<Mount> {
        self.mount_with(test, store, &self.endpoints[n], &self.bucket, &self.env(), &[])
    }

    /// Mounts with any endpoint, bucket, credentials and extra flags.
    pub fn mount_with(
        &self,
        test: &str,
        store: Option<&Path>,
        endpoint: &str,
        bucket: &str,
        env: &[(String, String)],
        extra: &[&str],
    ) -> Option<Mount> {
        let mut flags = vec!["--s3-bucket", bucket, "--s3-endpoint", endpoint];
        flags.extend_from_slice(extra);
        crate::common::mount_store_with_env(test, store, "8GiB", &flags, env)
    }
}

fn creds(key: &(String, String), region: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), key.0.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), key.1.clone()),
        ("AWS_REGION".into(), region.into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill_all();
    }
}
