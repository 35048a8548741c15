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
pub(crate) struct Chromedriver {
    child: Child,
    addr: SocketAddr,
}

impl Chromedriver {
    /// Starts chromedriver on a free port. One that ends before saying its port (seen once
    /// in CI, the cause unknown) is started again, twice at most; if all three end so, the
    /// panic lists each one's exit status and error output.
    pub(crate) fn start() -> Chromedriver {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Chromedriver::try_start() {
                Ok(started) => return started,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("chromedriver ended before saying its port, three times: {failures:#?}");
    }

    fn try_start() -> Result<Chromedriver, String> {
        let errors = tempfile::tempfile().unwrap();
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(errors.try_clone().unwrap())
            .spawn()
            .expect("chromedriver is needed for the dashboard test: apt-get install chromium chromium-driver (cargo xtask test does)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let Some(line) = lines.next() else {
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let mut errors = errors;
                let mut said = String::new();
                let _ = std::io::Seek::rewind(&mut errors);
                let _ = std::io::Read::read_to_string(&mut errors, &mut said);
                return Err(format!("{status}; its error output: {said:?}"));
            };
            let line = line.unwrap();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().parse::<u16>().unwrap();
            }
        };
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Chromedriver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
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
pub(crate) struct Browser {
    driver: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(crate) fn open(driver: &Chromedriver) -> Browser {
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

    pub(crate) fn go(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    pub(crate) fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Waits (bounded) until `css` matches an element; its reference.
    pub(crate) fn wait_for(&self, css: &str) -> String {
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

    pub(crate) fn click(&self, css: &str) {
        self.on_element(css, "POST", "click", Some(json!({})));
    }

    pub(crate) fn text(&self, css: &str) -> String {
        self.on_element(css, "GET", "text", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Sets the window's size (headless: the viewport's) and returns the page's inner width.
    fn resize(&self, width: u32, height: u32) -> i64 {
        self.command(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
        self.script("return window.innerWidth").as_i64().unwrap()
    }

    /// Waits (bounded) until `script` returns true; panics with what it returned last.
    fn wait_until(&self, script: &str) {
        let started = Instant::now();
        loop {
            let value = self.script(script);
            if value == Value::Bool(true) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "{script} was not true within {WAIT:?} (returned {value})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn screenshot(&self, path: &Path) {
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
pub(crate) fn artifact(name: &str) -> PathBuf {
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
        browser.wait_for(&format!("{row} [data-full='{caller_id}']"));
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
        browser.click("#tab-suppliers");
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
        browser.click("#tab-suppliers");
        browser.wait_for(&format!(
            "[data-caller='{caller_id}'].complete [data-step='step3'].done"
        ));
        browser.click("#lang-en");
        assert!(browser.text("#tab-suppliers").starts_with("Callers"));
        browser.script("window.scrollTo(0, 0)");
        browser.screenshot(&artifact("dashboard-callers.png"));

        // The refused handshake, with its reason.
        browser.click("#tab-rejections");
        assert_eq!(browser.text("#rejections-body tr .badge"), "no certificate");
        // Its time on one line (one line box, kept from wrapping), to the second.
        assert_eq!(
            browser.script(
                "const c = document.querySelector('#rejections-body tr td.when'); \
                 const r = document.createRange(); r.selectNodeContents(c); \
                 return [r.getClientRects().length, getComputedStyle(c).whiteSpace === 'nowrap', /^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$/.test(c.textContent)]"
            ),
            json!([1, true, true])
        );
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
        assert!(text.contains("GetCodeListNames"), "{text}");
        browser.wait_for(&format!("{row} .warn-mark[data-warnings~='soap_action']"));
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

/// The registry of the tests below: a large supplier owning the OCES3 test certificate, allowed
/// the registration's service, and a small one that has not called yet.
fn desk_registry(dir: &Path) -> std::sync::Arc<dfdg_mock::supplier::LiveRegistry> {
    use dfdg_mock::supplier::{Category, LiveRegistry, Registry, Supplier};
    let path = dir.join("suppliers.toml");
    Registry::of(vec![
        Supplier {
            name: "Jobcenter Systemer A/S".to_owned(),
            cvr: CVR.to_owned(),
            category: Category::Large,
            identities: vec![format!("CVR:{CVR}-UUID:{OCES3_UUID}")],
            services: vec!["JobcenterMessageService".to_owned()],
            revoked: Vec::new(),
            systems: Vec::new(),
        },
        Supplier {
            name: "Ny Leverandør ApS".to_owned(),
            cvr: "12345678".to_owned(),
            category: Category::Small,
            identities: vec!["CVR:12345678-UUID:00000000-0000-4000-8000-00000000abcd".to_owned()],
            services: vec!["PersonStatusService".to_owned()],
            revoked: Vec::new(),
            systems: Vec::new(),
        },
    ])
    .save(&path)
    .unwrap();
    std::sync::Arc::new(LiveRegistry::load(&path, false).unwrap())
}

/// The server with [`desk_registry`] in `dir` and an admin listener.
async fn desk_server(pki: &Pki, dir: &Path) -> TestServer {
    TestServer::start_with(
        pki,
        Options {
            admin: Some(AdminOptions::loopback()),
            suppliers: Some(desk_registry(dir)),
            ..Options::default()
        },
    )
    .await
}

/// Opens the dashboard in Danish, whatever language the profile remembered.
fn open_in_danish(browser: &Browser, dashboard: &str) {
    browser.go(dashboard);
    browser.script("localStorage.setItem('dfdg-mock-lang', 'da')");
    browser.go(dashboard);
}

/// A certificate of the test organisation that no supplier registered.
fn unregistered(pki: &Pki) -> dfdg_mock::pki::IssuedCertificate {
    pki.client(
        dfdg_mock::pki::CertificateShape::Oces3 {
            uuid: "00000000-0000-4000-8000-0000000000ff".parse().unwrap(),
        },
        365,
    )
}

/// One registration; its HTTP status and the journal id the server answered with.
async fn call_as(
    pki: &Pki,
    server: &TestServer,
    certificate: &dfdg_mock::pki::IssuedCertificate,
    user_identifier: &str,
) -> (u16, i64) {
    let reply = pki
        .client_with(Some(certificate))
        .soap11(server.addr, ACTION, &registration(user_identifier))
        .await
        .unwrap();
    let id = reply
        .headers
        .get(dfdg_mock::app::CALL_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no call id in the answer: {:?}", reply.headers));
    (reply.status, id)
}

/// Rows of the feed that take more than one line, or whose outcome is not wholly in view
/// (clipped by its cell, the feed or the window): `[]` when every row is as it should be.
const FEED_PROBLEMS: &str = r##"
const wrap = document.getElementById("feed-wrap").getBoundingClientRect();
const problems = [];
if (document.getElementById("feed-wrap").scrollWidth > document.getElementById("feed-wrap").clientWidth + 1)
  problems.push("the feed scrolls sideways");
for (const row of document.querySelectorAll("#feed-body tr")) {
  const cell = row.querySelector("td.caller");
  const line = parseFloat(getComputedStyle(cell).lineHeight);
  const height = row.getBoundingClientRect().height;
  if (height > 1.5 * line + 16) problems.push(row.id + " is " + height + " px tall (a line is " + line + ")");
  const badge = row.querySelector(".outcome-badge").getBoundingClientRect();
  const outcome = row.querySelector("td.outcome").getBoundingClientRect();
  if (badge.width === 0 || badge.right > outcome.right + 1 || badge.right > wrap.right + 1 || badge.right > window.innerWidth)
    problems.push(row.id + ": outcome at " + badge.left + "-" + badge.right + ", cell ends " + outcome.right + ", feed " + wrap.right);
  const full = row.querySelector("[data-full]");
  if (full && full.getBoundingClientRect().height > 1.5 * line) problems.push(row.id + ": the caller id wraps");
}
return problems;
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_keeps_each_call_on_one_line_with_its_outcome_and_warnings_in_view_at_1400_and_1000_px(
) {
    if suites::require(Suite::Browser, suites::chromium()).is_none() {
        return;
    }
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let server = desk_server(&pki, dir.path()).await;
    let own = pki.oces3_client();
    let caller_id = format!("CVR:{CVR}-UUID:{OCES3_UUID}");
    for _ in 0..14 {
        assert_eq!(call_as(&pki, &server, &own, &caller_id).await.0, 200);
    }
    // Answered, but the headers name someone else: not a plain green receipt.
    let (status, mismatched) = call_as(&pki, &server, &own, "CVR:11111111-UUID:not-me").await;
    assert_eq!(status, 200);
    // A trusted certificate no supplier registered: refused with 1012, though its headers match.
    let stranger = unregistered(&pki);
    let stranger_id = format!("CVR:{CVR}-UUID:00000000-0000-4000-8000-0000000000ff");
    let (status, refused) = call_as(&pki, &server, &stranger, &stranger_id).await;
    assert_eq!(status, 500);
    let dashboard = format!("http://{}/", server.admin());

    tokio::task::spawn_blocking(move || {
        let driver = Chromedriver::start();
        let browser = Browser::open(&driver);
        open_in_danish(&browser, &dashboard);
        browser.wait_for(&format!("#call-{refused}"));
        browser.wait_until("return document.querySelectorAll('#feed-body tr').length === 16");
        for width in [1400, 1000] {
            assert_eq!(browser.resize(width, 900), i64::from(width));
            assert_eq!(
                browser.script(FEED_PROBLEMS),
                json!([]),
                "at {width} px"
            );
            // The caller id: short on the row, whole on hover and copy.
            let row = format!("#call-{}", refused - 2);
            assert_eq!(
                browser.script(&format!(
                    "const n = document.querySelector('{row} [data-full]'); return [n.textContent, n.title, n.dataset.full]"
                )),
                json!(["UUID:3f2b6c1e…", caller_id, caller_id])
            );
            assert!(browser.text(&row).contains("Jobcenter Systemer A/S"));
            assert_eq!(browser.text(&format!("{row} .outcome-badge")), "✓ kvittering");
            // The mismatched call: a warning, not a plain green receipt.
            let warned = format!("#call-{mismatched}");
            browser.wait_for(&format!("{warned} .warn-mark[data-warnings~='identity']"));
            browser.wait_for(&format!("{warned} .outcome-badge.warn"));
            // The refused call: red, its code in view.
            browser.wait_for(&format!("#call-{refused}.refused .outcome-badge.bad"));
            assert_eq!(
                browser.text(&format!("#call-{refused} .outcome-badge")),
                "✗ fejl 1012"
            );
            // Its reason on hover.
            let reason = browser.script(&format!(
                "return document.querySelector('#call-{refused} td.outcome').title"
            ));
            assert!(
                reason.as_str().unwrap().starts_with("Logon failed"),
                "{reason}"
            );
            browser.script("window.scrollTo(0, 0)");
            browser.screenshot(&artifact(&format!("dashboard-feed-{width}.png")));
        }

        // A refused call's detail leads with the refusal and its reason, in red.
        assert_eq!(browser.resize(1400, 900), 1400);
        browser.click(&format!("#call-{refused}"));
        browser.wait_for("#refusal");
        assert_eq!(
            browser.script("return document.getElementById('detail').children[1].id"),
            "refusal",
            "the refusal is not the first thing under the title"
        );
        let refusal = browser.text("#refusal");
        assert!(refusal.starts_with("✗ Afvist: fejl 1012"), "{refusal}");
        assert!(
            refusal.contains("belongs to no registered supplier"),
            "{refusal}"
        );
        // Its headers do name its certificate, but that is no green light on a refused call.
        browser.wait_for("#identity-verdict.neutral");
        assert_eq!(browser.text("#detail-caller-id"), stranger_id);
        assert_eq!(browser.text("#detail-authorization"), "afvist 1012");
        assert_eq!(browser.text("#detail-supplier"), "(ingen registreret leverandør)");
        assert_eq!(browser.text("#detail-soap-action"), ACTION);
        assert_eq!(browser.text("#detail-scenario-rule"), "(nåede ikke scenarierne)");
        assert!(browser.text("#receipts").contains("(ingen)"));
        browser.script("document.getElementById('detail').scrollTop = 0");
        browser.screenshot(&artifact("dashboard-refused.png"));
        // At 1,000 px the detail goes below the feed, whole and without sideways scrolling.
        assert_eq!(browser.resize(1000, 900), 1000);
        assert_eq!(
            browser.script(
                "const d = document.getElementById('detail'); \
                 return [d.scrollWidth <= d.clientWidth + 1, document.documentElement.scrollWidth <= window.innerWidth, \
                 d.getBoundingClientRect().top >= document.getElementById('feed-wrap').getBoundingClientRect().bottom]"
            ),
            json!([true, true, true])
        );
        browser.script("document.getElementById('detail').scrollIntoView()");
        browser.screenshot(&artifact("dashboard-refused-1000.png"));
        assert_eq!(browser.resize(1400, 900), 1400);

        // The mismatched call's detail: the failed check with what was expected and found.
        browser.click(&format!("#call-{mismatched}"));
        browser.wait_for("#identity-verdict.warn");
        let check = browser.text("#header-findings li[data-check='identity']");
        assert!(
            check.contains("✗") && check.contains("fundet CVR:11111111-UUID:not-me"),
            "{check}"
        );
        assert_eq!(browser.text("#detail-supplier"), "Jobcenter Systemer A/S");
        assert_eq!(browser.text("#detail-scenario-rule"), "standardsvar (ingen regel ramte)");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_card_shows_its_registration_and_three_steps_citing_one_call_in_danish_and_english(
) {
    if suites::require(Suite::Browser, suites::chromium()).is_none() {
        return;
    }
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let server = desk_server(&pki, dir.path()).await;
    let own = pki.oces3_client();
    let caller_id = format!("CVR:{CVR}-UUID:{OCES3_UUID}");
    // The call that passes, then a newer one whose headers name someone else: the card's
    // steps must all cite the first.
    let (_, passing) = call_as(&pki, &server, &own, &caller_id).await;
    let (_, mismatched) = call_as(&pki, &server, &own, "CVR:11111111-UUID:not-me").await;
    let stranger = unregistered(&pki);
    let (status, _) = call_as(&pki, &server, &stranger, "x").await;
    assert_eq!(status, 500);
    let mismatched_receipt = server
        .journal()
        .calls
        .iter()
        .find(|call| call.id == mismatched)
        .unwrap()
        .record
        .receipts[0]
        .clone();
    // What `onboarding status` counts, to compare with the card.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
        .args(["onboarding", "status", "--json", "--journal"])
        .arg(&server.journal_path)
        .arg("--suppliers")
        .arg(dir.path().join("suppliers.toml"))
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&status.stdout).unwrap();
    let cli_calls = cli["suppliers"][0]["calls"].as_u64().unwrap();
    assert_eq!(cli_calls, 2, "{cli}");
    let dashboard = format!("http://{}/", server.admin());
    let card = "[data-supplier='Jobcenter Systemer A/S']";
    let idle = "[data-supplier='Ny Leverandør ApS']";

    tokio::task::spawn_blocking(move || {
        let driver = Chromedriver::start();
        let browser = Browser::open(&driver);
        open_in_danish(&browser, &dashboard);
        browser.click("#tab-suppliers");
        assert!(browser.text("#tab-suppliers").starts_with("Leverandører"));
        browser.wait_for(&format!("{card} [data-step='step1'].done"));
        let text = browser.text(card);
        for expected in [
            "Jobcenter Systemer A/S",
            CVR,
            "stor",
            "JobcenterMessageService",
            &caller_id,
            "I gang",
        ] {
            assert!(text.contains(expected), "no {expected:?} on the card:\n{text}");
        }
        assert_eq!(
            browser.text(&format!("{card} dd.calls")),
            cli_calls.to_string(),
            "the card and `onboarding status` count differently"
        );
        // Steps 1 and 2 cite the passing call, not the newer mismatched one; step 3 is open
        // on the same call, with a button that can succeed.
        let steps = format!(
            "return [...document.querySelectorAll(\"{card} [data-step]\")].map(s => [s.dataset.step, s.dataset.state, s.dataset.call])"
        );
        let p = passing.to_string();
        assert_eq!(
            browser.script(&steps),
            json!([["step1", "received", p], ["step2", "passed", p], ["step3", "not_confirmed", p]])
        );
        assert_eq!(
            browser.text(&format!("{card} button.confirm")),
            format!("Bekræft kvitteringen for kald {passing}")
        );
        // The supplier that has not called: nothing to confirm.
        browser.wait_for(&format!("{idle} [data-step='step1'].todo"));
        assert!(browser.text(idle).contains("Ikke startet"));
        assert_eq!(
            browser.script(&format!("return document.querySelectorAll(\"{idle} button\").length")),
            0
        );

        // A confirmation the API refuses is told in the page's language.
        browser.script(&format!(
            "confirmReceipt('{mismatched_receipt}', 'Ny Leverandør ApS')"
        ));
        browser.wait_until(
            "return document.getElementById('error').textContent.startsWith('Kvitteringen tilhører en anden leverandør')",
        );

        // Confirm: all three steps cite the one call.
        browser.click(&format!("{card} button.confirm"));
        browser.wait_for(&format!("{card}.complete [data-step='step3'].done"));
        assert_eq!(
            browser.script(&steps),
            json!([["step1", "received", p], ["step2", "passed", p], ["step3", "confirmed", p]])
        );
        assert_eq!(
            browser.script(&format!("return document.querySelectorAll(\"{card} button\").length")),
            0,
            "a confirm button left on a complete card"
        );
        assert!(browser
            .text(&format!("{card} [data-step='step1']"))
            .contains(&format!("Kald {passing} besvaret med kvittering")));
        browser.script("window.scrollTo(0, 0)");
        browser.screenshot(&artifact("dashboard-supplier-da.png"));

        browser.click("#lang-en");
        assert!(browser.text("#tab-suppliers").starts_with("Suppliers"));
        assert_eq!(browser.text("header .sub"), "administration · STAR's webservices, offline");
        let text = browser.text(card);
        for expected in [
            "Allowed services",
            "large",
            "Complete",
            &format!("Call {passing} answered with receipt"),
            &format!("of call {passing} confirmed"),
        ] {
            assert!(text.contains(expected), "no {expected:?} on the card:\n{text}");
        }
        browser.screenshot(&artifact("dashboard-supplier-en.png"));

        // A step's link opens the call it cites.
        browser.click(&format!("{card} [data-step='step2'] a[data-call-link]"));
        browser.wait_for(&format!("#call-{passing}.selected"));
        assert_eq!(browser.text("#detail-caller-id"), caller_id);
        browser.click("#lang-da");
        assert_eq!(browser.text("header .sub"), "administration · STARs webservices, offline");
    })
    .await
    .unwrap();
}
