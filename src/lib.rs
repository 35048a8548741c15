//! dfdg-mock: an offline imitation of STAR's DFDG and Jobnet SOAP webservices over mutual TLS.
//!
//! The caller binds, the library serves: [`server::run`] takes a bound listener, the TLS side
//! ([`tls::TlsServer`]) and the request pipeline ([`app::App`]), so tests run it on port 0.
//! [`admin::run`] serves the administrator's side (JSON API, dashboard, metrics) the same way.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod encoding;
pub mod health;
pub mod identity;
pub mod journal;
pub mod logging;
pub mod metrics;
pub mod onboarding;
pub mod pki;
pub mod position;
pub mod scenario;
pub mod server;
pub mod soap;
pub mod supplier;
pub mod tls;
pub mod verify;
pub mod welcome;
pub mod wsb;
pub mod wsdl;
