//! A real S3-compatible server on 127.0.0.1 for the S3 tests: s3s-fs, installed by
//! scripts/setup. A bucket is a folder under its root.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::common::Mount;

pub const ACCESS_KEY: &str = "cairntest";
pub const SECRET_KEY: &str = "cairntestsecret";

/// A running s3s-fs.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cargo"));
    let p = home.join("bin/s3s-fs");
    assert!(p.exists(), "s3s-fs is not installed: run scripts/setup (it installs it with cargo install)");
    p
}

impl S3Server {
    /// Starts a server with one bucket and waits for its "running" line.
    pub fn start(bucket: &str) -> S3Server {
        let dir = tempfile::Builder::new().prefix("cairn-s3-").tempdir().unwrap();
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join(bucket)).unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec {} --host 127.0.0.1 --port 0 --access-key {ACCESS_KEY} --secret-key {SECRET_KEY} {} 2>&1",
                binary().display(),
                root.display()
            ))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let endpoint = loop {
            let line = lines.next().expect("s3s-fs exited before it was ready").unwrap();
            if let Some(i) = line.find("server is running at ") {
                break line[i + "server is running at ".len()..].trim().to_string();
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        S3Server { child, endpoint, root, _dir: dir }
    }

    /// The file that holds an object in the bucket.
    pub fn object_path(&self, bucket: &str, name: &str) -> PathBuf {
        self.root.join(bucket).join(name)
    }

    /// The server's process id (`sh -c exec` leaves s3s-fs itself as the child).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes the server (SIGSTOP): connections hang.
    pub fn stall(&self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGSTOP).unwrap();
    }

    /// Thaws it.
    pub fn resume(&self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGCONT).unwrap();
    }

    /// Stops it for good.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The daemon flags and credentials that point a mount at this server.
    pub fn mount(&self, test: &str, store: Option<&std::path::Path>, bucket: &str) -> Option<Mount> {
        self.mount_via(test, store, bucket, crate::common::Via::Mount)
    }

    /// Like [`mount`](Self::mount), reached through `via`.
    pub fn mount_via(
        &self,
        test: &str,
        store: Option<&std::path::Path>,
        bucket: &str,
        via: crate::common::Via,
    ) -> Option<Mount> {
        let flags = ["--s3-bucket", bucket, "--s3-endpoint", &self.endpoint];
        crate::common::mount_via(test, store, "8GiB", &flags, &credentials(), via)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.resume_quietly();
        self.kill();
    }
}

impl S3Server {
    fn resume_quietly(&self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGCONT);
    }
}

/// Credentials for the test server, as the AWS standard chain reads them.
pub fn credentials() -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}
