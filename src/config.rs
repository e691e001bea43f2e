//! Configuration of the daemon: command-line flags, then `CAIRN_*` environment variables
//! (both through clap), then `~/.config/cairn/config.toml`, then defaults. The file and the
//! paths are read by [`crate::protocol::config`], which the wrappers use too.

use std::path::PathBuf;

use crate::size::parse_size;

/// Default cache limit: 10 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

pub use crate::protocol::config::{config_path, default_mountpoint, read_file, ConfigError, FileConfig};

/// The settings of one mount, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountConfig {
    pub mountpoint: PathBuf,
    pub store: PathBuf,
    pub max_size: u64,
    pub allow_other: bool,
    /// The shared S3 tier, when a bucket is configured.
    pub s3: Option<crate::remote::s3::S3Config>,
    /// The remote execution engine, when one is configured.
    pub remote_exec: Option<RemoteExecConfig>,
}

/// Where compiles the cache misses may run (issue #22).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteExecConfig {
    /// `grpc://HOST:PORT` or `grpcs://HOST:PORT`.
    pub address: String,
    pub instance: String,
    /// Headers for every call, as written (`Name: value`); checked when the engine is
    /// connected (`reapi/client.rs`).
    pub headers: Vec<String>,
}

/// Remote execution settings from flags or `CAIRN_REMOTE_*` variables.
#[derive(Debug, Default, Clone)]
pub struct RemoteExecOverrides {
    pub address: Option<String>,
    pub instance: Option<String>,
    /// `CAIRN_REMOTE_HEADERS`: one `Name: value` a line. Only from the environment (and the
    /// file), never a flag, so a key does not show in process lists.
    pub headers: Option<String>,
}

/// The engine in effect (flags/env over the file), if one is named.
pub fn resolve_remote_exec(over: RemoteExecOverrides, file: &FileConfig) -> Option<RemoteExecConfig> {
    let address = over.address.or_else(|| file.remote_exec.clone()).filter(|a| !a.is_empty())?;
    let headers = match over.headers {
        Some(text) => text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        None => file.remote_headers.clone().unwrap_or_default(),
    };
    Some(RemoteExecConfig {
        address,
        instance: over.instance.or_else(|| file.remote_instance.clone()).unwrap_or_default(),
        headers,
    })
}

/// What the command line (with env) said; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub mountpoint: Option<PathBuf>,
    pub store: Option<PathBuf>,
    pub max_size: Option<String>,
    pub allow_other: bool,
    pub s3: S3Overrides,
    pub remote_exec: RemoteExecOverrides,
}

/// S3 settings from flags or `CAIRN_S3_*` variables.
#[derive(Debug, Default, Clone)]
pub struct S3Overrides {
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub path_style: Option<bool>,
    pub prefetch: Option<bool>,
    pub signing_key: Option<PathBuf>,
    pub read_only: Option<bool>,
}

/// The S3 settings in effect (flags/env over the file), if a bucket is named.
pub fn resolve_s3(over: S3Overrides, file: &FileConfig) -> Option<crate::remote::s3::S3Config> {
    let bucket = over.bucket.or_else(|| file.s3_bucket.clone())?;
    Some(crate::remote::s3::S3Config {
        bucket,
        prefix: over.prefix.or_else(|| file.s3_prefix.clone()).unwrap_or_default(),
        region: over.region.or_else(|| file.s3_region.clone()),
        endpoint: over.endpoint.or_else(|| file.s3_endpoint.clone()),
        path_style: over.path_style.or(file.s3_path_style),
        prefetch: over.prefetch.or(file.s3_prefetch).unwrap_or(true),
        signing_key: over.signing_key.or_else(|| file.s3_signing_key.clone()),
        read_only: over.read_only.or(file.s3_read_only).unwrap_or(false),
    })
}

/// Resolves flags/env over the file over the defaults.
pub fn resolve(over: Overrides, file: FileConfig) -> Result<MountConfig, ConfigError> {
    let s3 = resolve_s3(over.s3.clone(), &file);
    let remote_exec = resolve_remote_exec(over.remote_exec.clone(), &file);
    let mountpoint = match over.mountpoint.or(file.mount) {
        Some(p) => p,
        None => default_mountpoint()?,
    };
    let store = match over.store.or(file.store) {
        Some(p) => p,
        None => crate::protocol::config::default_store()?,
    };
    let max_size = match over.max_size.or(file.max_size) {
        Some(s) => parse_size(&s).map_err(ConfigError::Size)?,
        None => DEFAULT_MAX_SIZE,
    };
    Ok(MountConfig {
        mountpoint,
        store,
        max_size,
        allow_other: over.allow_other || file.allow_other.unwrap_or(false),
        s3,
        remote_exec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beats_defaults() {
        let file: FileConfig = toml::from_str("store = \"/f/store\"\nmax_size = \"1GiB\"\nmount = \"/f/mnt\"").unwrap();
        let c = resolve(Overrides { store: Some("/cli".into()), ..Default::default() }, file).unwrap();
        assert_eq!(c.store, PathBuf::from("/cli"));
        assert_eq!(c.mountpoint, PathBuf::from("/f/mnt"));
        assert_eq!(c.max_size, 1 << 30);
        assert!(!c.allow_other);
    }

    #[test]
    fn bad_sizes_are_errors() {
        let bad = FileConfig { max_size: Some("lots".into()), ..Default::default() };
        assert!(resolve(
            Overrides { mountpoint: Some("/m".into()), store: Some("/s".into()), ..Default::default() },
            bad
        )
        .is_err());
    }
}
