//! What the wrapper binary's front ends and the daemon agree on, in one place both build: the
//! formats of objects and of the stats report, the names in the mount (keys and temporaries),
//! where things are (the config file, the mount, the store), and how the front ends hand a
//! build over to one another (the build-script launcher, the compiler links). Nothing here
//! needs the daemon's crates, so `cairn-rustc` links it as it is, and the daemon's modules
//! (`fs/`, `daemon/`, `stats`) import it instead of a front end.

pub mod config;
pub mod frontends;
pub mod names;
pub mod object;
pub mod remote;
pub mod report;
pub mod result_file;
pub mod result_writer;
pub mod seed;
pub mod wire;
