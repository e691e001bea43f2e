//! What the wrapper binaries and the daemon agree on, in one place both build: the formats of
//! objects and of the stats report, the names in the mount (keys and temporaries), and where things are (the config file, the mount, the
//! store). Nothing here needs the daemon's crates, so `cairn-rustc` links it as it is, and the
//! daemon's modules (`fs/`, `daemon/`, `stats`) import it instead of the wrapper.

pub mod config;
pub mod names;
pub mod object;
pub mod report;
