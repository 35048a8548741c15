//! dfdg-mock: an offline imitation of STAR's DFDG and Jobnet SOAP webservices over mutual TLS.
//!
//! [`instance`] is the one composition root: it builds a server from a [`config::Config`] and
//! runs it on listeners the caller bound (so tests run it on port 0), for `serve` and the
//! integration tests alike.

pub mod admin;
pub mod app;
pub mod banner;
pub mod check;
pub mod cli;
pub mod config;
pub mod encoding;
pub mod health;
pub mod identity;
pub mod instance;
pub mod journal;
pub mod listener;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod onboarding;
pub mod pki;
pub mod position;
pub mod scenario;
pub mod server;
pub mod soap;
pub mod supplier;
pub mod tables;
pub mod tls;
pub mod verify;
pub mod watch;
pub mod welcome;
pub mod wsb;
pub mod wsdl;
