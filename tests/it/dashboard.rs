//! The dashboard in a real headless Chromium, driven over WebDriver (chromedriver; a minimal
//! W3C WebDriver client over a plain TCP socket below): open the page, make a SOAP call over
//! mutual TLS, see it appear without a reload, open its detail, confirm its receipt, see the
//! checklist update. Leaves screenshots in target/dashboard.png and target/dashboard-callers.png.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`cargo xtask test` installs them; without
//! them plain `cargo test` skips this test and says so).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::suites::{self, Suite};
use crate::support::*;

const ACTION: &str = "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment";

/// The key W3C WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Every wait for the page has this bound.
const WAIT: Duration = Duration::from_secs(15);

/// chromedriver on a port it picked itself; killed on drop.
struct Chromedriver {
    child: Child,
    addr: SocketAddr,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed for the dashboard test: apt-get install chromium chromium-driver (cargo xtask test does)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("chromedriver ended before saying its port")
                .unwrap();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().parse::<u16>().unwrap();
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Chromedriver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // `/shutdown` makes chromedriver quit its browsers; a killed chromedriver would leave
        // Chromium running.
        let addr = self.addr;
        let _ = std::panic::catch_unwind(|| http(addr, "GET", "/shutdown", None));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange with chromedriver, JSON in and out. Reads exactly the response
/// (Content-Length or chunked), whether or not the server closes the connection.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("content-length:") {
            length = value.trim().parse::<usize>().ok();
        }
        chunked |= line.starts_with("transfer-encoding:") && line.contains("chunked");
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body).unwrap();
    } else {
        reader.read_to_end(&mut body).unwrap();
    }
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A browser session; ended on drop.
struct Browser {
    driver: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(driver: &Chromedriver) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                        "--force-device-scale-factor=1", "--window-size=1440,900",
                        format!("--user-data-dir={}", profile.path().display()),
                    ]
                }
            }}
        });
        let (status, answer) = http(driver.addr, "POST", "/session", Some(&capabilities));
        assert_eq!(status, 200, "cannot start Chromium: {answer}");
        Browser {
            driver: driver.addr,
            session: answer["value"]["sessionId"].as_str().unwrap().to_owned(),
            _profile: profile,
        }
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, answer) = http(self.driver, method, &path, body.as_ref());
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    fn go(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Waits (bounded) until `css` matches an element; its reference.
    fn wait_for(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let path = format!("/session/{}/element", self.session);
            let (status, answer) = http(
                self.driver,
                "POST",
                &path,
                Some(&json!({ "using": "css selector", "value": css })),
            );
            if status == 200 {
                return answer["value"][ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("{css}: {answer}"))
                    .to_owned();
            }
            assert!(
                started.elapsed() < WAIT,
                "{css} did not appear within {WAIT:?}; the page says: {}",
                self.script("return document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `command` on the element `css` matches; finds it again when the page re-rendered
    /// it in between (a stale element reference).
    fn on_element(&self, css: &str, method: &str, command: &str, body: Option<Value>) -> Value {
        let started = Instant::now();
        loop {
            let element = self.wait_for(css);
            let path = format!("/session/{}/element/{element}/{command}", self.session);
            let (status, answer) = http(self.driver, method, &path, body.as_ref());
            if status == 200 {
                return answer["value"].clone();
            }
            assert!(
                answer["value"]["error"] == "stale element reference" && started.elapsed() < WAIT,
                "{method} {command} on {css}: {answer}"
            );
        }
    }

    fn click(&self, css: &str) {
        self.on_element(css, "POST", "click", Some(json!({})));
    }

    fn text(&self, css: &str) -> String {
        self.on_element(css, "GET", "text", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn screenshot(&self, path: &Path) {
        let png = self.command("GET", "/screenshot", None);
        let bytes = base64_decode(png.as_str().unwrap());
        assert!(bytes.starts_with(b"\x89PNG"));
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| http(self.driver, "DELETE", &path, None));
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut bits = 0u32;
        for (index, c) in chunk.iter().enumerate() {
            bits |= value(*c) << (18 - 6 * index);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// target/<name>: test artifacts a person can look at.
fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_call_live_and_confirming_its_receipt_completes_the_checklist() {
    if suites::require(Suite::Browser, suites::chromium()).is_none() {
        return;
    }
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    // A refused handshake first, so that tab has something to show.
    let _ = pki
        .client_with(None)
        .soap11(server.addr, ACTION, "<x/>")
        .await;
    let dashboard = format!("http://{}/", server.admin());
    let runtime = tokio::runtime::Handle::current();
    let soap = server.addr;
    let admin = server.admin();
    let client = pki.client_with(Some(&pki.oces3_client()));
    let caller_id = format!("CVR:{CVR}-UUID:{OCES3_UUID}");

    tokio::task::spawn_blocking(move || {
        let driver = Chromedriver::start();
        let browser = Browser::open(&driver);
        browser.go(&dashboard);
        browser.wait_for("#live.on");
        browser.script("window.__sameDocument = 'yes'");
        assert!(browser.text("#feed-empty").contains("Ingen kald endnu"));

        // A SOAP call over mutual TLS appears without a reload.
        let reply = runtime
            .block_on(client.soap11(soap, ACTION, &registration(&caller_id)))
            .unwrap();
        assert_eq!(reply.status, 200);
        let receipt = element_text(&reply.body, "MessageIdentifier")
            .unwrap()
            .to_owned();
        let id = runtime.block_on(admin_json(admin, "/api/calls"))["calls"][0]["id"]
            .as_i64()
            .unwrap();
        let row = format!("#call-{id}");
        assert!(browser.text(&row).contains(&caller_id));
        assert_eq!(
            browser.script("return window.__sameDocument"),
            "yes",
            "the page reloaded"
        );

        // Its detail: certificate identity beside the header findings, pretty XML.
        browser.click(&row);
        assert_eq!(browser.text("#detail-caller-id"), caller_id);
        assert_eq!(browser.text("#detail-user-identifier"), caller_id);
        assert!(browser.text("#identity-verdict").starts_with('✓'));
        let xml = browser.text("#request-xml");
        assert!(
            xml.contains("\n  <soap:Header>"),
            "not pretty-printed: {xml}"
        );
        assert!(xml.contains("<SaveAvailabilityAssessment"), "{xml}");

        // The callers tab before confirming: steps 1 and 2 done, 3 open.
        browser.click("#tab-callers");
        browser.wait_for(&format!(
            "[data-caller='{caller_id}'] [data-step='step2'].done"
        ));
        browser.wait_for(&format!(
            "[data-caller='{caller_id}'] [data-step='step3'].todo"
        ));
        browser.click("#tab-calls");

        // Confirm the receipt on the call's detail.
        browser.click(&format!("#confirm-{receipt}"));
        assert!(browser
            .text(&format!("#confirmed-{receipt}"))
            .contains("Bekræftet"));
        browser.script("window.scrollTo(0, 0); document.getElementById('detail').scrollTop = 0");
        browser.screenshot(&artifact("dashboard.png"));

        // The checklist is complete.
        browser.click("#tab-callers");
        browser.wait_for(&format!(
            "[data-caller='{caller_id}'].complete [data-step='step3'].done"
        ));
        browser.click("#lang-en");
        assert!(browser.text("#tab-callers").starts_with("Callers"));
        browser.script("window.scrollTo(0, 0)");
        browser.screenshot(&artifact("dashboard-callers.png"));

        // The refused handshake, with its reason.
        browser.click("#tab-rejections");
        assert_eq!(browser.text("#rejections-body tr .badge"), "no certificate");
        assert_eq!(browser.script("return window.__sameDocument"), "yes");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_calls_findings_against_the_wsdl() {
    let pki = Pki::new();
    let loaded = dfdg_mock::wsdl::Catalog::load(&dfdg_mock::config::CatalogConfig {
        dirs: vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl")],
        validation: dfdg_mock::config::ValidationMode::Report,
        services: std::collections::HashMap::new(),
    });
    let catalog = std::sync::Arc::new(loaded.catalog);
    let server = TestServer::start_with(
        &pki,
        Options {
            catalog: Some(catalog.clone()),
            admin: Some(AdminOptions::loopback()),
            ..Options::default()
        },
    )
    .await;
    let path = CODE_LIST_PATH;
    let names = code_list_names_request(&catalog);
    // The Body asks for GetCodeListNames, the SOAPAction names GetCodeList.
    let reply = pki
        .client_with(Some(&pki.oces3_client()))
        .soap_to(
            server.addr,
            path,
            dfdg_mock::soap::SoapVersion::V11,
            Some("urn:dfdg-mock:CodeListService:1#GetCodeList"),
            &names,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = admin_json(server.admin(), "/api/calls").await["calls"][0]["id"]
        .as_i64()
        .unwrap();
    let dashboard = format!("http://{}/", server.admin());

    tokio::task::spawn_blocking(move || {
        let driver = Chromedriver::start();
        let browser = Browser::open(&driver);
        browser.go(&dashboard);
        let row = format!("#call-{id}");
        browser.wait_for(&row);
        let text = browser.text(&row);
        assert!(text.contains("GetCodeListNames ⚠ 1"), "{text}");
        browser.click(&row);
        browser.wait_for("#wsdl-findings li");
        let findings = browser.text("#wsdl-findings");
        assert!(findings.contains("SOAPAction"), "{findings}");
        assert!(
            findings.contains("the action of GetCodeList,"),
            "{findings}"
        );
    })
    .await
    .unwrap();
}
