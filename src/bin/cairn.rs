//! `cairn`: the daemon and admin command line. Parses arguments and calls into the library.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use cairn::admin;
use cairn::config::{self, MountConfig, Overrides};
use cairn::daemon::{self, background, mounts, RunOptions};
use cairn::engine::door::Door;
use cairn::size::format_size;

#[derive(Parser)]
#[command(name = "cairn", version, about = "A build cache for Rust that lives in a filesystem")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount the cache (in the foreground unless --background).
    Mount(MountArgs),
    /// Mount the cache in the background; returns once it is ready.
    Start(MountArgs),
    /// Unmount the cache, or stop a daemon that serves it without a mount; the daemon
    /// finishes pending S3 uploads, saves its index and exits before this returns.
    #[command(alias = "stop")]
    Umount {
        /// Mount point (default: CAIRN_MOUNT, the config file, or ~/.cache/cairn/mnt).
        #[arg(env = "CAIRN_MOUNT")]
        mountpoint: Option<PathBuf>,
        /// The store whose daemon to stop when nothing is mounted [default: CAIRN_STORE, the
        /// config file, or ~/.cache/cairn/store]
        #[arg(long, env = "CAIRN_STORE")]
        store: Option<PathBuf>,
    },
    /// Remove entries by key, locally and in the bucket (what `rm <mnt>/<key>` does, also
    /// where there is no mount).
    Rm {
        /// 64-hex keys, as listed in the mount or the wrapper's log.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        #[command(flatten)]
        at: At,
    },
    /// Hits, misses, time saved, and how full the cache is.
    Stats {
        /// Print the JSON document (also readable as <mnt>/.cairn/stats.json).
        #[arg(long)]
        json: bool,
        /// Start the "since zero" counters over.
        #[arg(long)]
        zero: bool,
        #[command(flatten)]
        at: At,
    },
    /// Remove entries: all of one crate's, or all not used for a while.
    Evict {
        /// Remove every entry of this crate (as listed in <mnt>/by-crate/).
        #[arg(long = "crate", value_name = "NAME", required_unless_present = "older_than")]
        krate: Option<String>,
        /// Remove every entry not used for this long (30d, 12h, 90m).
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        #[command(flatten)]
        at: At,
    },
    /// Check FUSE, the mount and the S3 set-up; each failure names its fix.
    Doctor {
        #[command(flatten)]
        s3: S3Args,
        #[command(flatten)]
        remote: RemoteExecArgs,
        #[command(flatten)]
        at: At,
    },
    /// Why a crate recompiled: what differs from the nearest earlier build on this machine.
    Why {
        /// The crate, as in the wrapper's log or <mnt>/by-crate/ (a build script is listed
        /// under its package's name).
        #[arg(value_name = "CRATE")]
        krate: String,
    },
    /// Remove every entry.
    Clear {
        /// Yes, remove everything.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        at: At,
    },
}

/// The shared S3 tier (mount and doctor take the same flags).
#[derive(Args, Clone, Default)]
struct S3Args {
    /// S3 bucket shared by many machines (enables the S3 tier)
    #[arg(long, env = "CAIRN_S3_BUCKET")]
    s3_bucket: Option<String>,
    /// Prefix of every object name in the bucket, such as team-a/
    #[arg(long, env = "CAIRN_S3_PREFIX")]
    s3_prefix: Option<String>,
    /// Region of the bucket [default: from the AWS config, else us-east-1]
    #[arg(long, env = "CAIRN_S3_REGION")]
    s3_region: Option<String>,
    /// Endpoint of an S3-compatible server, such as http://127.0.0.1:9000 (also AWS_ENDPOINT_URL)
    #[arg(long, env = "CAIRN_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// Path-style addressing: true or false [default: true for a custom endpoint]
    #[arg(long, env = "CAIRN_S3_PATH_STYLE", num_args = 0..=1, default_missing_value = "true")]
    s3_path_style: Option<bool>,
    /// Fetch a crate's result along with its manifest, before it is asked for: true or false
    /// [default: true]
    #[arg(long, env = "CAIRN_S3_PREFETCH", num_args = 0..=1, default_missing_value = "true")]
    s3_prefetch: Option<bool>,
    /// A file holding a secret (at least 16 bytes): uploads are signed with it, and only objects
    /// signed with it are taken from the bucket (docs/security.md)
    #[arg(long, env = "CAIRN_S3_SIGNING_KEY")]
    s3_signing_key: Option<PathBuf>,
    /// Read the bucket, never write it: no uploads, and rm removes the local copy only
    #[arg(long, env = "CAIRN_S3_READ_ONLY", value_parser = clap::builder::BoolishValueParser::new())]
    s3_read_only: bool,
}

impl S3Args {
    fn overrides(&self) -> config::S3Overrides {
        config::S3Overrides {
            bucket: self.s3_bucket.clone(),
            prefix: self.s3_prefix.clone(),
            region: self.s3_region.clone(),
            endpoint: self.s3_endpoint.clone(),
            path_style: self.s3_path_style,
            prefetch: self.s3_prefetch,
            signing_key: self.s3_signing_key.clone(),
            read_only: self.s3_read_only.then_some(true),
        }
    }

    /// The same settings as arguments, for a background daemon.
    fn to_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut push = |flag: &str, val: &Option<String>| {
            if let Some(x) = val {
                v.push(format!("--{flag}={x}"));
            }
        };
        push("s3-bucket", &self.s3_bucket);
        push("s3-prefix", &self.s3_prefix);
        push("s3-region", &self.s3_region);
        push("s3-endpoint", &self.s3_endpoint);
        push("s3-path-style", &self.s3_path_style.map(|b| b.to_string()));
        push("s3-prefetch", &self.s3_prefetch.map(|b| b.to_string()));
        push("s3-signing-key", &self.s3_signing_key.as_ref().map(|p| mounts::absolute(p).display().to_string()));
        if self.s3_read_only {
            v.push("--s3-read-only".to_string());
        }
        v
    }
}

/// The remote execution engine (mount and doctor take the same flags).
#[derive(Args, Clone, Default)]
struct RemoteExecArgs {
    /// A Remote Execution API engine that runs the compiles the cache misses:
    /// grpc://HOST:PORT or grpcs://HOST:PORT (docs/remote-execution.md) [default: off]
    #[arg(long, env = "CAIRN_REMOTE_EXEC")]
    remote_exec: Option<String>,
    /// The engine's instance name [default: empty]
    #[arg(long, env = "CAIRN_REMOTE_INSTANCE")]
    remote_instance: Option<String>,
}

impl RemoteExecArgs {
    fn overrides(&self) -> config::RemoteExecOverrides {
        config::RemoteExecOverrides {
            address: self.remote_exec.clone(),
            instance: self.remote_instance.clone(),
            headers: std::env::var("CAIRN_REMOTE_HEADERS").ok(),
        }
    }

    /// The same settings as arguments, for a background daemon.
    fn to_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(a) = &self.remote_exec {
            v.push(format!("--remote-exec={a}"));
        }
        if let Some(i) = &self.remote_instance {
            v.push(format!("--remote-instance={i}"));
        }
        v
    }
}

#[derive(Args, Clone)]
struct At {
    /// The mount to use [default: CAIRN_MOUNT, the config file, or ~/.cache/cairn/mnt]
    #[arg(long = "mount", env = "CAIRN_MOUNT")]
    mount: Option<PathBuf>,
    /// Where there is no mount: the store whose daemon to reach through its socket
    /// [default: CAIRN_STORE, the config file, or ~/.cache/cairn/store]
    #[arg(long = "store", env = "CAIRN_STORE")]
    store: Option<PathBuf>,
}

/// The daemon's door: the live mount named by `--mount`, `CAIRN_MOUNT`, the config file or
/// the default; else the socket of the store named the same way.
fn live_door(at: &At) -> Result<Door> {
    let (mp, store) = places(at.mount.clone(), at.store.clone())?;
    Door::at(Some(&mp), Some(&store)).with_context(|| {
        format!(
            "no cairn daemon: nothing mounted at {} and no socket at {}: start one with `cairn start` (or pass --mount/--store)",
            mp.display(),
            cairn::protocol::wire::socket_path(&store).display()
        )
    })
}

/// The mount point and store folder: as given, else from `CAIRN_MOUNT`/`CAIRN_STORE`, the
/// config file, or the defaults.
fn places(mount: Option<PathBuf>, store: Option<PathBuf>) -> Result<(PathBuf, PathBuf)> {
    // A mount named without a store: the store of the daemon behind that mount, never
    // another daemon's at the default store.
    let of_mount = match (&mount, &store) {
        (Some(mp), None) => cairn::engine::mount::store_of_mount(mp),
        _ => None,
    };
    let mp = match mount {
        Some(p) => p,
        None => cairn::protocol::config::mountpoint()?,
    };
    let store = match store.or(of_mount) {
        Some(p) => p,
        None => cairn::protocol::config::store()?,
    };
    Ok((mounts::absolute(&mp), mounts::absolute(&store)))
}

fn print_removed(removed: &[cairn::admin::Removed]) {
    let mut total = 0;
    for r in removed {
        total += r.size;
        println!("removed {}  {:<24} {}", r.key, r.crate_name.as_deref().unwrap_or("-"), format_size(r.size));
    }
    println!("{} entries, {} removed", removed.len(), format_size(total));
}

#[derive(Args, Clone)]
struct MountArgs {
    /// Local store folder [default: ~/.cache/cairn/store]
    #[arg(long, env = "CAIRN_STORE")]
    store: Option<PathBuf>,
    /// Size limit of the local store, such as 64MiB or 10GiB [default: 10GiB]
    #[arg(long, env = "CAIRN_MAX_SIZE")]
    max_size: Option<String>,
    /// Let other users read the mount; only its owner and root may change it (needs user_allow_other in /etc/fuse.conf).
    #[arg(long, env = "CAIRN_ALLOW_OTHER")]
    allow_other: bool,
    /// Serve every read through the daemon instead of FUSE passthrough.
    #[arg(long, env = "CAIRN_NO_PASSTHROUGH")]
    no_passthrough: bool,
    /// Do not mount: serve the cache through the socket in the store folder only (what the
    /// daemon does by itself where FUSE cannot be used).
    #[arg(long, env = "CAIRN_NO_FUSE", value_parser = clap::builder::BoolishValueParser::new())]
    no_fuse: bool,
    /// FUSE worker threads [default: cores, between 2 and 8]
    #[arg(long)]
    threads: Option<usize>,
    /// Return once the mount is ready, leaving the daemon running.
    #[arg(long)]
    background: bool,
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    remote: RemoteExecArgs,
    /// Mount point [default: ~/.cache/cairn/mnt]
    #[arg(env = "CAIRN_MOUNT")]
    mountpoint: Option<PathBuf>,
}

fn resolve(a: &MountArgs) -> Result<MountConfig> {
    let path = config::config_path()?;
    let file = config::read_file(&path)?;
    Ok(config::resolve(
        Overrides {
            mountpoint: a.mountpoint.clone(),
            store: a.store.clone(),
            max_size: a.max_size.clone(),
            allow_other: a.allow_other,
            s3: a.s3.overrides(),
            remote_exec: a.remote.overrides(),
        },
        file,
    )?)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG_LEVEL")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: background daemons write to a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

fn mount(a: MountArgs, background: bool) -> Result<()> {
    let mut cfg = resolve(&a)?;
    cfg.mountpoint = mounts::absolute(&cfg.mountpoint);
    cfg.store = mounts::absolute(&cfg.store);
    if background {
        if mounts::state(&cfg.mountpoint) == mounts::MountState::Live {
            eprintln!("cairn is already mounted at {}", cfg.mountpoint.display());
            return Ok(());
        }
        if Door::at(None, Some(&cfg.store)).is_some() {
            eprintln!(
                "a cairn daemon already serves {} (through its socket {})",
                cfg.store.display(),
                cairn::protocol::wire::socket_path(&cfg.store).display()
            );
            return Ok(());
        }
        let mut extra = Vec::new();
        if a.no_passthrough {
            extra.push("--no-passthrough".to_string());
        }
        if a.no_fuse {
            extra.push("--no-fuse".to_string());
        }
        if let Some(t) = a.threads {
            extra.push(format!("--threads={t}"));
        }
        extra.extend(a.s3.to_args());
        extra.extend(a.remote.to_args());
        let exe = std::env::current_exe().context("finding the cairn executable")?;
        let pid = background::start(&exe, &cfg, &extra)?;
        let at = match mounts::state(&cfg.mountpoint) {
            mounts::MountState::Live => format!("mounted at {}", cfg.mountpoint.display()),
            _ => {
                let why = Door::at(None, Some(&cfg.store))
                    .and_then(|d| admin::why_no_mount(&d))
                    .unwrap_or_else(|| "see the log".into());
                format!(
                    "serving without a mount ({why}) through {}",
                    cairn::protocol::wire::socket_path(&cfg.store).display()
                )
            }
        };
        eprintln!(
            "cairn {at} (store {}, limit {}), daemon pid {pid}, log {}",
            cfg.store.display(),
            format_size(cfg.max_size),
            background::log_path(&cfg).display()
        );
        return Ok(());
    }
    init_logging();
    let mut opts = RunOptions { passthrough: !a.no_passthrough, fuse: !a.no_fuse, ..Default::default() };
    if let Some(t) = a.threads {
        if t == 0 {
            bail!("--threads must be at least 1");
        }
        opts.threads = t;
    }
    daemon::run(&cfg, opts, background::signal_ready)?;
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Mount(a) => {
            let bg = a.background;
            mount(a, bg)
        }
        Command::Start(a) => mount(a, true),
        Command::Umount { mountpoint, store } => {
            let (mp, store) = places(mountpoint, store)?;
            let (door, mounted) = match mounts::state(&mp) {
                mounts::MountState::NotMounted => match Door::at(None, Some(&store)) {
                    Some(d) => (d, false),
                    None => bail!(
                        "nothing is mounted at {} and no daemon serves {}",
                        mp.display(),
                        cairn::protocol::wire::socket_path(&store).display()
                    ),
                },
                _ => (Door::Mount(mp.clone()), true),
            };
            let daemon_pid = admin::daemon_of(&door);
            match mounted {
                true => daemon::unmount(&mp).with_context(|| format!("unmounting {}", mp.display()))?,
                false => door.stop().context("asking the daemon to stop")?,
            }
            // The daemon saves its index and finishes pending uploads after the unmount: wait
            // for it, so that an ephemeral machine (a CI runner) can stop as soon as this returns.
            if let Some((pid, pending)) = daemon_pid {
                if pending > 0 {
                    eprintln!("waiting for {pending} pending S3 uploads and deletions (at most 2 minutes)");
                }
                let limit = cairn::store::tiered::SHUTDOWN_DRAIN + std::time::Duration::from_secs(30);
                if !admin::wait_exit(pid, limit) {
                    bail!("the daemon (pid {pid}) is still running after {} s", limit.as_secs());
                }
            }
            Ok(())
        }
        Command::Rm { keys, at } => {
            let door = live_door(&at)?;
            let mut parsed = Vec::new();
            for k in &keys {
                match cairn::key::Key::parse(k) {
                    Some(key) => parsed.push(key),
                    None => bail!("{k:?} is not a key: 64 lowercase hex digits, as listed in the mount"),
                }
            }
            let (removed, failed) = admin::remove_keys(&door, &parsed);
            print_removed(&removed);
            for f in &failed {
                eprintln!("error: {f}");
            }
            if !failed.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Stats { json, zero, at } => {
            let door = live_door(&at)?;
            if zero {
                admin::zero(&door).context("zeroing the statistics")?;
                eprintln!("statistics zeroed");
            }
            let doc = admin::stats_json(&door).context("reading .cairn/stats.json")?;
            if json {
                print!("{doc}");
            } else {
                println!("cairn cache at {}", door.describe());
                print!("{}", admin::render(&doc).map_err(anyhow::Error::msg)?);
            }
            Ok(())
        }
        Command::Why { krate } => {
            let base = cairn::engine::mount::cache_base().context("finding the cache folder (is HOME set?)")?;
            print!("{}", admin::why(&base, &krate));
            Ok(())
        }
        Command::Evict { krate, older_than, at } => {
            let door = live_door(&at)?;
            let mut removed = Vec::new();
            if let Some(name) = krate {
                removed.extend(admin::evict_crate(&door, &name).with_context(|| format!("evicting crate {name}"))?);
            }
            if let Some(age) = older_than {
                let age = admin::parse_age(&age).map_err(anyhow::Error::msg)?;
                removed.extend(admin::evict_older(&door, age).context("evicting old entries")?);
            }
            print_removed(&removed);
            Ok(())
        }
        Command::Doctor { s3, remote, at } => {
            let file = config::read_file(&config::config_path()?)?;
            let (mp, store) = places(at.mount, at.store)?;
            let s3 = config::resolve_s3(s3.overrides(), &file);
            let remote = config::resolve_remote_exec(remote.overrides(), &file);
            let checks = cairn::doctor::run(&mp, &store, s3.as_ref(), remote.as_ref());
            for c in &checks {
                println!("{:<5} {:<15} {}", if c.ok { "ok" } else { "FAIL" }, c.name, c.detail);
            }
            if s3.is_none() {
                println!(
                    "{:<5} {:<15} no bucket configured (--s3-bucket or CAIRN_S3_BUCKET): local cache only",
                    "-", "s3"
                );
            }
            if remote.is_none() {
                println!(
                    "{:<5} {:<15} no engine configured (--remote-exec or CAIRN_REMOTE_EXEC): misses compile here",
                    "-", "remote-exec"
                );
            }
            if checks.iter().any(|c| !c.ok) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Clear { yes, at } => {
            let door = live_door(&at)?;
            if !yes {
                bail!("this removes every entry in the cache at {}; run `cairn clear --yes` to do it", door.describe());
            }
            print_removed(&admin::clear(&door).context("clearing the cache")?);
            Ok(())
        }
    }
}
