//! dfdg-mock: an offline imitation of STAR's DFDG and Jobnet SOAP webservices over mutual TLS.

pub mod identity;
pub mod pki;
