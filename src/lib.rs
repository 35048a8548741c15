//! dfdg-mock: an offline imitation of STAR's DFDG and Jobnet SOAP webservices over mutual TLS.

pub mod config;
pub mod journal;
pub mod position;
pub mod soap;
