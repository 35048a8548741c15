//! dfdg-mock: an offline imitation of STAR's DFDG and Jobnet SOAP webservices over mutual TLS.
//!
//! The caller binds, the library serves: [`server::run`] takes a bound listener, the TLS side
//! ([`tls::TlsServer`]) and the request pipeline ([`app::App`]), so tests run it on port 0.

pub mod app;
pub mod cli;
pub mod config;
pub mod identity;
pub mod journal;
pub mod pki;
pub mod position;
pub mod server;
pub mod soap;
pub mod tls;
pub mod wsdl;
