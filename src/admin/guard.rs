//! Cross-site safety of the admin listener, checked before anything else (the token rule
//! included), so that a web page the administrator's browser happens to open can neither read
//! the journal nor change it:
//!
//! - **Host** (every route): the name the request was addressed to must be this listener's own
//!   address (an IP address it answers on; any port, since a container's port may be forwarded),
//!   `localhost` (or a name under `.localhost`), or a configured name (`--admin-host`, and the
//!   server names the certificate covers). A page on `evil.example` that re-binds its name to
//!   127.0.0.1 sends `Host: evil.example` and is refused (DNS rebinding).
//! - **Origin** (state-changing routes, i.e. every method but GET and HEAD): absent, or the same
//!   origin as the Host; `Sec-Fetch-Site`, where a browser sends it, `same-origin` or `none`.
//! - **Content type** (POST, the only state-changing method routed): `application/json` only,
//!   even for an empty body.
//!   A cross-site form or `fetch` without a CORS preflight can send `text/plain`, never JSON.

use std::net::{IpAddr, SocketAddr};

use http::header::{CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderMap, Method, StatusCode, Uri};

/// Who may address the listener.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The listener's own address.
    listen: SocketAddr,
    /// Configured names (lower case, no trailing dot).
    names: Vec<String>,
}

/// Why a request was refused, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    MissingHost,
    ForeignHost(String),
    ForeignOrigin { origin: String, host: String },
    CrossSiteFetch(String),
    NotJson(Option<String>),
}

impl Refusal {
    /// 415 for the content type, 400 for a request without a Host, else 403.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::MissingHost => StatusCode::BAD_REQUEST,
            Refusal::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::FORBIDDEN,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::MissingHost => {
                "the request has no Host header; the admin listener answers only requests addressed to it".to_owned()
            }
            Refusal::ForeignHost(host) => format!(
                "Host {host:?} is not a name of this admin listener (its own address, localhost, or a configured name): \
                 refused against DNS rebinding; to reach it by that name, add it with --admin-host (DFDG_MOCK_ADMIN_HOSTS, [admin] hosts)"
            ),
            Refusal::ForeignOrigin { origin, host } => format!(
                "Origin {origin:?} is not this admin listener (http://{host}): a state-changing request from another web page is refused"
            ),
            Refusal::CrossSiteFetch(site) => format!(
                "Sec-Fetch-Site is {site:?}: a state-changing request from another web page is refused"
            ),
            Refusal::NotJson(None) => {
                "a state-changing request must be sent with Content-Type: application/json (even with an empty body)".to_owned()
            }
            Refusal::NotJson(Some(found)) => format!(
                "Content-Type {found:?} refused: a state-changing request must be sent with Content-Type: application/json"
            ),
        }
    }
}

impl Guard {
    /// The guard of a listener bound to `listen`, also answering to `names`.
    pub fn new(listen: SocketAddr, names: &[String]) -> Guard {
        Guard {
            listen,
            names: names.iter().filter_map(|name| normal_name(name)).collect(),
        }
    }

    /// Checks a request's Host, and for a state-changing one its Origin and content type.
    pub fn check(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = match headers.get(HOST) {
            Some(value) => value
                .to_str()
                .map_err(|_| {
                    Refusal::ForeignHost(String::from_utf8_lossy(value.as_bytes()).into_owned())
                })?
                .to_owned(),
            None => uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .ok_or(Refusal::MissingHost)?,
        };
        if !self.is_own(&host) {
            return Err(Refusal::ForeignHost(host));
        }
        if *method == Method::GET || *method == Method::HEAD {
            return Ok(());
        }
        if let Some(site) = headers.get("sec-fetch-site") {
            let site = String::from_utf8_lossy(site.as_bytes()).to_ascii_lowercase();
            if site != "same-origin" && site != "none" {
                return Err(Refusal::CrossSiteFetch(site));
            }
        }
        for origin in headers.get_all(ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            if !same_origin(&origin, &host) {
                return Err(Refusal::ForeignOrigin { origin, host });
            }
        }
        // A method no route takes (DELETE, PUT, ...) gets its 405 from the router.
        if *method != Method::POST && *method != Method::PUT && *method != Method::PATCH {
            return Ok(());
        }
        let content_type = headers
            .get(CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        match &content_type {
            Some(value) if is_json(value) => Ok(()),
            _ => Err(Refusal::NotJson(content_type)),
        }
    }

    /// Whether `host` (a Host header's value) names this listener.
    fn is_own(&self, host: &str) -> bool {
        let Some((name, _port)) = split_host(host) else {
            return false;
        };
        if let Ok(ip) = name.parse::<IpAddr>() {
            let own = self.listen.ip();
            return ip == own || own.is_unspecified() || (ip.is_loopback() && own.is_loopback());
        }
        let Some(name) = normal_name(name) else {
            return false;
        };
        name == "localhost" || name.ends_with(".localhost") || self.names.contains(&name)
    }
}

/// A DNS name in lower case without its trailing dot; `None` when empty.
fn normal_name(name: &str) -> Option<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// `host[:port]` → the host (IPv6 without brackets) and the port, if any.
fn split_host(value: &str) -> Option<(&str, Option<u16>)> {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        return match after {
            "" => Some((ip, None)),
            port => Some((ip, Some(port.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match value.rsplit_once(':') {
        Some((name, port)) => Some((name, Some(port.parse().ok()?))),
        None => Some((value, None)),
    }
}

/// Whether an `Origin` (`scheme://host[:port]`) is the origin the `host` header addresses.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.trim().split_once("://") else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let (Some((origin_name, origin_port)), Some((host_name, host_port))) =
        (split_host(authority), split_host(host))
    else {
        return false;
    };
    origin_name.eq_ignore_ascii_case(host_name)
        && origin_port.unwrap_or(default) == host_port.unwrap_or(default)
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn check(guard: &Guard, method: Method, pairs: &[(&'static str, &str)]) -> Result<(), Refusal> {
        guard.check(&method, &Uri::from_static("/api/calls"), &headers(pairs))
    }

    #[test]
    fn hosts_are_the_listeners_address_localhost_or_configured_names() {
        let guard = Guard::new("127.0.0.1:8080".parse().unwrap(), &["Mock.CI.".to_owned()]);
        for host in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST",
            "dashboard.localhost:9000",
            "[::1]:8080",
            "mock.ci:8080",
            "mock.ci.",
        ] {
            assert_eq!(
                check(&guard, Method::GET, &[("host", host)]),
                Ok(()),
                "{host}"
            );
        }
        for host in [
            "evil.example:8080",
            "192.0.2.1:8080",
            "localhost.evil.example",
            "",
            "a:b",
        ] {
            assert!(
                matches!(
                    check(&guard, Method::GET, &[("host", host)]),
                    Err(Refusal::ForeignHost(_))
                ),
                "{host}"
            );
        }
        let any = Guard::new("0.0.0.0:8080".parse().unwrap(), &[]);
        assert_eq!(
            check(&any, Method::GET, &[("host", "192.0.2.1:9090")]),
            Ok(())
        );
        assert!(check(&any, Method::GET, &[("host", "evil.example")]).is_err());
        assert_eq!(check(&any, Method::GET, &[]), Err(Refusal::MissingHost));
    }

    #[test]
    fn state_changes_need_the_same_origin_and_json() {
        let guard = Guard::new("127.0.0.1:8080".parse().unwrap(), &[]);
        let host = ("host", "127.0.0.1:8080");
        let json = ("content-type", "application/json; charset=utf-8");
        assert_eq!(check(&guard, Method::POST, &[host, json]), Ok(()));
        assert_eq!(
            check(
                &guard,
                Method::POST,
                &[host, json, ("origin", "http://127.0.0.1:8080")]
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &guard,
                Method::POST,
                &[("host", "localhost"), json, ("origin", "http://localhost")]
            ),
            Ok(())
        );
        assert!(matches!(
            check(
                &guard,
                Method::POST,
                &[host, json, ("origin", "http://evil.example")]
            ),
            Err(Refusal::ForeignOrigin { .. })
        ));
        assert!(matches!(
            check(
                &guard,
                Method::POST,
                &[host, json, ("origin", "http://127.0.0.1:3000")]
            ),
            Err(Refusal::ForeignOrigin { .. })
        ));
        assert!(matches!(
            check(&guard, Method::POST, &[host, json, ("origin", "null")]),
            Err(Refusal::ForeignOrigin { .. })
        ));
        assert!(matches!(
            check(
                &guard,
                Method::POST,
                &[host, json, ("sec-fetch-site", "cross-site")]
            ),
            Err(Refusal::CrossSiteFetch(_))
        ));
        assert_eq!(
            check(
                &guard,
                Method::POST,
                &[host, ("content-type", "text/plain")]
            ),
            Err(Refusal::NotJson(Some("text/plain".to_owned())))
        );
        assert_eq!(
            check(&guard, Method::POST, &[host]),
            Err(Refusal::NotJson(None))
        );
        assert_eq!(
            Refusal::NotJson(None).status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        // Reading is not a state change: a foreign Origin on a GET is the browser's business.
        assert_eq!(
            check(
                &guard,
                Method::GET,
                &[host, ("origin", "http://evil.example")]
            ),
            Ok(())
        );
    }
}
