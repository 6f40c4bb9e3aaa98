//! The service configuration: one TOML file whose shape is a contract with operators
//! (docs/design.md §3). `model` holds the typed fields, `load` parses and validates a file and
//! reports every problem with its field and line, `locate` maps fields to lines, `warnings`
//! names the allowed settings that weaken a promise, `address_list` holds addresses given once
//! per IP family.

mod address_list;
mod ip_net;
mod load;
mod locate;
mod model;
pub(crate) mod numbers;
mod warnings;

pub use ip_net::IpNet;
pub(crate) use load::split_host_port;
pub use load::{load_file, load_str, ConfigError, Problem};
pub use model::*;
pub use warnings::warnings;
