//! `dfdg-mock health`: the probe behind the container's HEALTHCHECK. It passes against the real
//! server with the test CA and a valid client certificate, and fails with a message that says
//! what went wrong — nothing listening, no answer in time, refused certificate, not 200.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dfdg_mock::config::ClientAuthMode;
use dfdg_mock::health::{Probe, Unhealthy};
use dfdg_mock::pki::IssuedCertificate;

use crate::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_dfdg-mock");

/// Writes `ca.crt`, `demo-client.crt` and `demo-client.key` as `serve` lays them out.
fn certs_dir(pki: &Pki, client: &IssuedCertificate) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), pki.ca.cert_pem()).unwrap();
    std::fs::write(certs.join("demo-client.crt"), &client.cert_pem).unwrap();
    std::fs::write(certs.join("demo-client.key"), client.key_pem()).unwrap();
    (dir, certs)
}

fn probe(address: std::net::SocketAddr, certs: &Path) -> Probe {
    Probe::from_files(
        address,
        "localhost",
        &certs.join("ca.crt"),
        &certs.join("demo-client.crt"),
        &certs.join("demo-client.key"),
    )
    .unwrap()
}

/// An address where nothing listens: bound by us, then released.
async fn closed_address() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    address
}

#[tokio::test]
async fn health_passes_against_the_server_and_journals_nothing() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let (_dir, certs) = certs_dir(&pki, &pki.oces3_client());

    let healthy = probe(server.addr, &certs)
        .check(Duration::from_secs(5))
        .await
        .unwrap();

    assert_eq!(healthy.address, server.addr);
    assert_eq!(healthy.tls_version, "TLSv1_3");
    let journal = server.stop().await;
    assert!(journal.calls.is_empty(), "a health check is not a call");
    assert!(journal.rejections.is_empty());
}

#[tokio::test]
async fn health_fails_clearly_when_nothing_listens() {
    let pki = Pki::new();
    let (_dir, certs) = certs_dir(&pki, &pki.oces3_client());
    let address = closed_address().await;

    let unhealthy = probe(address, &certs)
        .check(Duration::from_secs(5))
        .await
        .unwrap_err();

    assert!(
        matches!(unhealthy, Unhealthy::Connect { .. }),
        "{unhealthy:?}"
    );
    assert!(
        unhealthy
            .to_string()
            .starts_with(&format!("cannot connect to {address}: ")),
        "{unhealthy}"
    );
}

#[tokio::test]
async fn health_gives_up_on_a_silent_listener_within_its_limit() {
    let pki = Pki::new();
    let (_dir, certs) = certs_dir(&pki, &pki.oces3_client());
    // Accepted by the kernel's backlog, never answered.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let started = Instant::now();

    let unhealthy = probe(silent.local_addr().unwrap(), &certs)
        .check(Duration::from_millis(300))
        .await
        .unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(unhealthy, Unhealthy::Timeout { .. }),
        "{unhealthy:?}"
    );
    assert!(
        unhealthy.to_string().ends_with("within 300ms"),
        "{unhealthy}"
    );
}

#[tokio::test]
async fn health_fails_when_the_server_refuses_the_client_certificate() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let foreign = Pki::named("Some Other CA");
    // Trusts the right CA, presents a certificate the server does not trust.
    let (_dir, certs) = certs_dir(&pki, &foreign.oces3_client());

    let unhealthy = probe(server.addr, &certs)
        .check(Duration::from_secs(5))
        .await
        .unwrap_err();

    assert!(
        matches!(
            unhealthy,
            Unhealthy::Handshake { .. } | Unhealthy::Exchange { .. }
        ),
        "{unhealthy:?}"
    );
    assert!(unhealthy.to_string().contains("UnknownCA"), "{unhealthy}");
}

#[tokio::test]
async fn health_fails_on_an_answer_other_than_200() {
    let pki = Pki::new();
    let options = Options {
        mode: ClientAuthMode::Diagnose,
        ..Options::default()
    };
    let server = TestServer::start_with(&pki, options).await;
    let expired = pki.client(
        dfdg_mock::pki::CertificateShape::Oces3 {
            uuid: OCES3_UUID.parse().unwrap(),
        },
        -1,
    );
    let (_dir, certs) = certs_dir(&pki, &expired);

    let unhealthy = probe(server.addr, &certs)
        .check(Duration::from_secs(5))
        .await
        .unwrap_err();

    assert!(
        matches!(unhealthy, Unhealthy::Status { .. }),
        "{unhealthy:?}"
    );
    assert!(
        unhealthy
            .to_string()
            .contains("\"HTTP/1.1 403 Forbidden\", not 200"),
        "{unhealthy}"
    );
}

fn health_command(certs: &Path, listen: &str) -> std::process::Output {
    Command::new(BINARY)
        .args(["health", "--timeout", "3s"])
        .env("DFDG_MOCK_LISTEN", listen)
        .env("DFDG_MOCK_CERTS_DIR", certs)
        .env_remove("DFDG_MOCK_CONFIG")
        .current_dir(certs)
        .output()
        .unwrap()
}

#[tokio::test]
async fn health_command_exits_0_when_healthy_and_1_with_the_reason_otherwise() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let (_dir, certs) = certs_dir(&pki, &pki.oces3_client());
    let listen = server.addr.to_string();
    let up = {
        let certs = certs.clone();
        tokio::task::spawn_blocking(move || health_command(&certs, &listen))
            .await
            .unwrap()
    };
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert_eq!(
        up.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(stdout.starts_with("healthy: "), "{stdout}");

    let address = closed_address().await.to_string();
    let down = tokio::task::spawn_blocking(move || health_command(&certs, &address))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert_eq!(down.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: unhealthy: cannot connect to 127.0.0.1:"),
        "{stderr}"
    );
}

#[test]
fn health_command_without_a_pki_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let output = health_command_in(dir.path(), &missing);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot prepare the health check"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&missing.join("ca.crt").display().to_string()),
        "{stderr}"
    );
}

fn health_command_in(cwd: &Path, certs: &Path) -> std::process::Output {
    Command::new(BINARY)
        .args(["health", "--listen", "127.0.0.1:9"])
        .env("DFDG_MOCK_CERTS_DIR", certs)
        .env_remove("DFDG_MOCK_CONFIG")
        .current_dir(cwd)
        .output()
        .unwrap()
}
