//! Configuration of the daemon: command-line flags, then `CAIRN_*` environment variables
//! (both through clap), then `~/.config/cairn/config.toml`, then defaults.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::size::parse_size;

/// Default cache limit: 10 GiB.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

/// Settings read from the config file; every field optional.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
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

/// The settings of one mount, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountConfig {
    pub mountpoint: PathBuf,
    pub store: PathBuf,
    pub max_size: u64,
    pub allow_other: bool,
    /// The shared S3 tier, when a bucket is configured.
    pub s3: Option<crate::remote::s3::S3Config>,
}

/// What the command line (with env) said; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub mountpoint: Option<PathBuf>,
    pub store: Option<PathBuf>,
    pub max_size: Option<String>,
    pub allow_other: bool,
    pub s3: S3Overrides,
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
    })
}

fn home() -> Result<PathBuf, ConfigError> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).ok_or(ConfigError::NoHome)
}

/// `$XDG_CONFIG_HOME/cairn/config.toml` or `~/.config/cairn/config.toml`; `CAIRN_CONFIG`
/// overrides.
pub fn config_path() -> Result<PathBuf, ConfigError> {
    if let Some(p) = std::env::var_os("CAIRN_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => home()?.join(".config"),
    };
    Ok(base.join("cairn").join("config.toml"))
}

fn cache_base() -> Result<PathBuf, ConfigError> {
    match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => Ok(PathBuf::from(x).join("cairn")),
        None => Ok(home()?.join(".cache").join("cairn")),
    }
}

/// The default mount point, `~/.cache/cairn/mnt`.
pub fn default_mountpoint() -> Result<PathBuf, ConfigError> {
    Ok(cache_base()?.join("mnt"))
}

/// Reads the config file if there is one.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(source) => Err(ConfigError::Read { path: path.to_owned(), source }),
    }
}

/// Resolves flags/env over the file over the defaults.
pub fn resolve(over: Overrides, file: FileConfig) -> Result<MountConfig, ConfigError> {
    let s3 = resolve_s3(over.s3.clone(), &file);
    let mountpoint = match over.mountpoint.or(file.mount) {
        Some(p) => p,
        None => default_mountpoint()?,
    };
    let store = match over.store.or(file.store) {
        Some(p) => p,
        None => cache_base()?.join("store"),
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
    fn unknown_keys_and_bad_sizes_are_errors() {
        assert!(toml::from_str::<FileConfig>("stor = \"/x\"").is_err());
        let bad = FileConfig { max_size: Some("lots".into()), ..Default::default() };
        assert!(resolve(
            Overrides { mountpoint: Some("/m".into()), store: Some("/s".into()), ..Default::default() },
            bad
        )
        .is_err());
    }
}
