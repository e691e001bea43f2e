//! Where things are, read the same way by every binary: the config file
//! (`~/.config/cairn/config.toml`, or `CAIRN_CONFIG`), the cache folder, the mount point and
//! the local store. The daemon adds its flags and the S3 settings on top (`crate::config`);
//! the wrappers use this directly, so a `mount =` in the file is the mount both find.
//!
//! Order, for each setting: the environment variable (`CAIRN_MOUNT`, `CAIRN_STORE`), then the
//! file, then the default under the cache folder.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

/// Settings read from the config file; every field optional.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Local store folder.
    pub store: Option<PathBuf>,
    /// Size limit, such as "10GiB".
    pub max_size: Option<String>,
    /// Mount point.
    pub mount: Option<PathBuf>,
    /// Let other users use the mount.
    pub allow_other: Option<bool>,
    /// S3 bucket shared by many machines.
    pub s3_bucket: Option<String>,
    pub s3_prefix: Option<String>,
    pub s3_region: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_path_style: Option<bool>,
    /// Fetch the results a fetched manifest names before they are asked for (default true).
    pub s3_prefetch: Option<bool>,
    /// A file holding the signing key (docs/security.md).
    pub s3_signing_key: Option<PathBuf>,
    /// Read the bucket, never write it.
    pub s3_read_only: Option<bool>,
    /// A Remote Execution API engine that runs the compiles the cache misses
    /// (`grpc://HOST:PORT` or `grpcs://HOST:PORT`; docs/remote-execution.md).
    pub remote_exec: Option<String>,
    /// The engine's instance name (default: empty).
    pub remote_instance: Option<String>,
    /// Headers sent with every call to the engine, `"Name: value"` each (an API key,
    /// `authorization: Bearer …`). Keep such a file private (mode 600).
    pub remote_headers: Option<Vec<String>>,
}

/// Why configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("bad size: {0}")]
    Size(String),
    #[error("cannot tell the home folder: set HOME, or pass the paths explicitly")]
    NoHome,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn home() -> Result<PathBuf, ConfigError> {
    env_path("HOME").ok_or(ConfigError::NoHome)
}

/// `$XDG_CONFIG_HOME/cairn/config.toml` or `~/.config/cairn/config.toml`; `CAIRN_CONFIG`
/// overrides.
pub fn config_path() -> Result<PathBuf, ConfigError> {
    if let Some(p) = std::env::var_os("CAIRN_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let base = match env_path("XDG_CONFIG_HOME") {
        Some(x) => x,
        None => home()?.join(".config"),
    };
    Ok(base.join("cairn").join("config.toml"))
}

/// The cache's base folder: `$XDG_CACHE_HOME/cairn` or `~/.cache/cairn`.
pub fn cache_base() -> Result<PathBuf, ConfigError> {
    match env_path("XDG_CACHE_HOME") {
        Some(x) => Ok(x.join("cairn")),
        None => Ok(home()?.join(".cache").join("cairn")),
    }
}

/// The default mount point, `~/.cache/cairn/mnt`.
pub fn default_mountpoint() -> Result<PathBuf, ConfigError> {
    Ok(cache_base()?.join("mnt"))
}

/// The default local store, `~/.cache/cairn/store`.
pub fn default_store() -> Result<PathBuf, ConfigError> {
    Ok(cache_base()?.join("store"))
}

/// Reads the config file if there is one (none is an empty config).
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(source) => Err(ConfigError::Read { path: path.to_owned(), source }),
    }
}

/// This process's config file, read once.
pub fn file() -> Result<&'static FileConfig, ConfigError> {
    static FILE: OnceLock<FileConfig> = OnceLock::new();
    if let Some(f) = FILE.get() {
        return Ok(f);
    }
    let f = read_file(&config_path()?)?;
    Ok(FILE.get_or_init(|| f))
}

/// The mount point: `CAIRN_MOUNT`, else the file's `mount`, else the default.
pub fn mountpoint() -> Result<PathBuf, ConfigError> {
    pick(env_path("CAIRN_MOUNT"), |f| f.mount.clone(), default_mountpoint)
}

/// The local store: `CAIRN_STORE`, else the file's `store`, else the default.
pub fn store() -> Result<PathBuf, ConfigError> {
    pick(env_path("CAIRN_STORE"), |f| f.store.clone(), default_store)
}

/// The store folder when one is named (`CAIRN_STORE` or the file's `store`), not defaulted.
pub fn named_store() -> Result<Option<PathBuf>, ConfigError> {
    match env_path("CAIRN_STORE") {
        Some(p) => Ok(Some(p)),
        None => Ok(file()?.store.clone()),
    }
}

/// The mount point when one is named (`CAIRN_MOUNT` or the file's `mount`), not defaulted.
pub fn named_mountpoint() -> Result<Option<PathBuf>, ConfigError> {
    match env_path("CAIRN_MOUNT") {
        Some(p) => Ok(Some(p)),
        None => Ok(file()?.mount.clone()),
    }
}

/// The environment's value, else the file's (the file is read only when needed), else the
/// default. A config file that cannot be read is an error, not a silent default: the daemon
/// refuses it too, and two binaries must never disagree about where the mount is.
fn pick(
    env: Option<PathBuf>,
    in_file: impl Fn(&FileConfig) -> Option<PathBuf>,
    default: impl Fn() -> Result<PathBuf, ConfigError>,
) -> Result<PathBuf, ConfigError> {
    if let Some(p) = env {
        return Ok(p);
    }
    in_file(file()?).map(Ok).unwrap_or_else(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("stor = \"/x\"").is_err());
        let f: FileConfig = toml::from_str("mount = \"/m\"\nstore = \"/s\"").unwrap();
        assert_eq!(f.mount, Some(PathBuf::from("/m")));
    }
}
