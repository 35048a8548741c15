//! Real-world contracts: the OIO-style fixtures of `tests/fixtures/oio` (written by us, one per
//! convention other agencies' WSDLs follow), files in UTF-16 and ISO-8859-1, non-ASCII names
//! over HTTP, the tool-friendly `?wsdl&tools` variant (a Java client generated from it by
//! JAX-WS `wsimport` for STAR's own WSDL), and every generated message checked by libxml2 and
//! `xmlschema` besides our own validator.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dfdg_mock::config::{CatalogConfig, ValidationMode};
use dfdg_mock::wsdl::serve::{self, Form};
use dfdg_mock::wsdl::{Catalog, Loaded};
use time::OffsetDateTime;

use crate::suites::{self, Suite};
use crate::support::*;
use dfdg_mock::soap::SoapVersion;

pub fn oio_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oio")
}

/// STAR's PlannerExternalCalendarService WSDL, copied alone into a temporary folder, when
/// `../shared/fixtures` is there.
pub fn star_copy() -> Option<tempfile::TempDir> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/star/PlannerExternalCalendarService.wsdl");
    if !file.is_file() {
        eprintln!(
            "skipped the STAR fixture: {} is not there (the project's tests do not need it)",
            file.display()
        );
        return None;
    }
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        &file,
        copy.path().join("PlannerExternalCalendarService.wsdl"),
    )
    .unwrap();
    Some(copy)
}

pub fn load(dir: &Path) -> Loaded {
    Catalog::load(&CatalogConfig {
        dirs: vec![dir.to_owned()],
        validation: ValidationMode::Enforce,
        services: HashMap::new(),
    })
}

fn oio() -> (Loaded, Arc<Catalog>) {
    let mut loaded = load(&oio_dir());
    assert!(loaded.problems.is_empty(), "{:#?}", loaded.problems);
    let catalog = Arc::new(std::mem::take(&mut loaded.catalog));
    (loaded, catalog)
}

/// The real server serving `catalog`.
async fn serve_catalog(pki: &Pki, catalog: &Arc<Catalog>) -> TestServer {
    TestServer::start_with(
        pki,
        Options {
            catalog: Some(Arc::clone(catalog)),
            ..Options::default()
        },
    )
    .await
}

/// What the two independent validators said about one catalog's generated messages.
#[derive(Debug, Default)]
pub struct Crosscheck {
    /// Operations whose example request and default answer both validators accept.
    pub operations_accepted: usize,
    pub operations: usize,
    /// Message parts (body elements and header blocks) both accept.
    pub parts_accepted: usize,
    /// The refusals, one line each.
    pub refusals: Vec<String>,
}

/// A Python interpreter with lxml and xmlschema (tests/e2e/requirements.txt), or `None`
/// after saying which suite was skipped.
fn python_validators() -> Option<PathBuf> {
    suites::require(Suite::Python, suites::python(&["lxml", "xmlschema"]))
}

/// Writes every operation's example request and default answer, checks each with our own
/// validator, then has libxml2 and `xmlschema` validate them against the tool-friendly form of
/// the WSDL they belong to.
pub fn crosscheck(python: &Path, catalog: &Catalog) -> Crosscheck {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/xsd_crosscheck.py");
    let mut result = Crosscheck::default();
    let now = OffsetDateTime::now_utc();
    for (index, wsdl) in catalog.wsdls.iter().enumerate() {
        let Some(endpoint) = catalog.endpoints.iter().find(|e| e.wsdl == index) else {
            continue;
        };
        let folder = tempfile::tempdir().unwrap();
        let contract = folder.path().join("contract");
        let mut wsdl_file = PathBuf::new();
        for (path, text) in serve::files(catalog, endpoint, "https://localhost:8443", Form::Tools) {
            let file = contract.join(&path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, text).unwrap();
            if wsdl_file.as_os_str().is_empty() {
                wsdl_file = file;
            }
        }
        let mut files = Vec::new();
        let mut operations: Vec<String> = Vec::new();
        for route in catalog.routes().filter(|r| r.endpoint.wsdl == index) {
            let request = route.example_request(now);
            let response = route.default_response(now).body;
            assert_eq!(route.validate(&request), vec![], "{request}");
            assert_eq!(route.validate_response(&response), vec![], "{response}");
            let name = format!("{}-{}", route.endpoint.service, route.operation.name);
            for (kind, text) in [("request", request), ("response", response)] {
                let file = folder.path().join(format!("{name}.{kind}.xml"));
                std::fs::write(&file, text).unwrap();
                files.push(file);
            }
            operations.push(name);
        }
        let output = std::process::Command::new(python)
            .arg(&script)
            .arg(&wsdl_file)
            .args(&files)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("valid ") || l.starts_with("INVALID ")),
            "the cross-check did not run for {}:\n{stdout}{stderr}",
            wsdl.file.display()
        );
        result.parts_accepted += stdout.lines().filter(|l| l.starts_with("valid ")).count();
        for name in operations {
            result.operations += 1;
            let refused: Vec<&str> = stdout
                .lines()
                .filter(|l| l.starts_with("INVALID ") && l[8..].starts_with(&format!("{name}.")))
                .collect();
            if refused.is_empty() {
                result.operations_accepted += 1;
            }
            result
                .refusals
                .extend(refused.iter().map(|l| l.to_string()));
        }
    }
    result
}

/// Writes the tool-friendly WSDL of `endpoint` and its parts into `dir`; returns the WSDL's path.
pub fn write_tools(catalog: &Catalog, endpoint: &dfdg_mock::wsdl::Endpoint, dir: &Path) -> PathBuf {
    let mut wsdl_file = PathBuf::new();
    for (path, text) in serve::files(catalog, endpoint, "https://localhost:8443", Form::Tools) {
        let file = dir.join(&path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        if wsdl_file.as_os_str().is_empty() {
            wsdl_file = file;
        }
    }
    wsdl_file
}

/// The generated messages of every OIO fixture pass both independent validators.
#[test]
fn oio_fixtures_generated_messages_pass_libxml2_and_xmlschema() {
    let Some(python) = python_validators() else {
        return;
    };
    let (_, catalog) = oio();
    let result = crosscheck(&python, &catalog);
    println!(
        "OIO fixtures: {} of {} operations accepted by our validator, libxml2 and xmlschema ({} message parts)",
        result.operations_accepted, result.operations, result.parts_accepted
    );
    assert_eq!(result.refusals, Vec::<String>::new());
    assert_eq!(result.operations_accepted, result.operations);
}

/// JAX-WS `wsimport`, as Debian's `jaxws` package installs it, or `None` after saying which
/// suite was skipped.
fn wsimport() -> Option<PathBuf> {
    suites::require(Suite::Java, suites::java()).map(|java| java.wsimport)
}

/// Runs wsimport on `wsdl` (generating and compiling the Java client) in `out`.
fn run_wsimport(wsimport: &Path, wsdl: &Path, out: &Path) -> std::process::Output {
    std::fs::create_dir_all(out.join("classes")).unwrap();
    std::fs::create_dir_all(out.join("src")).unwrap();
    std::process::Command::new(wsimport)
        .arg("-d")
        .arg(out.join("classes"))
        .arg("-s")
        .arg(out.join("src"))
        .arg("-keep")
        .arg("-quiet")
        .arg(wsdl)
        .output()
        .unwrap()
}

/// The Java client wsimport generates from the tool-friendly form of STAR's own WSDL, without
/// a hand edit: as published, wsimport refuses it.
#[tokio::test]
async fn wsimport_generates_a_java_client_from_the_tool_friendly_star_wsdl() {
    let Some(wsimport) = wsimport() else {
        return;
    };
    let Some(copy) = star_copy() else {
        return;
    };
    let mut loaded = load(copy.path());
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let catalog = Arc::new(std::mem::take(&mut loaded.catalog));
    let pki = Pki::new();
    let server = serve_catalog(&pki, &catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let path = &catalog.endpoints[0].path;
    let published = client
        .get(server.addr, &format!("{path}?wsdl"))
        .await
        .unwrap();
    let tools = client
        .get(server.addr, &format!("{path}?wsdl&tools"))
        .await
        .unwrap();
    assert_eq!(tools.status, 200, "{}", tools.body);
    assert!(tools.content_type().starts_with("text/xml"));
    drop(server);

    let work = tempfile::tempdir().unwrap();
    let published_file = work.path().join("published.wsdl");
    let tools_file = work.path().join("tools.wsdl");
    std::fs::write(&published_file, &published.body).unwrap();
    std::fs::write(&tools_file, &tools.body).unwrap();

    let wsimport_for = |file: PathBuf, out: PathBuf| {
        let wsimport = wsimport.clone();
        tokio::task::spawn_blocking(move || run_wsimport(&wsimport, &file, &out))
    };
    let refused = wsimport_for(published_file, work.path().join("published"))
        .await
        .unwrap();
    let refused_text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        !refused.status.success() || refused_text.contains("src-resolve"),
        "wsimport took the WSDL as published; the tool-friendly variant would not be needed:\n{refused_text}"
    );

    let generated = wsimport_for(tools_file, work.path().join("tools"))
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );
    assert!(generated.status.success(), "wsimport failed:\n{text}");
    assert!(
        !text.contains("[ERROR]") && !text.contains("src-resolve"),
        "{text}"
    );
    let classes = work.path().join("tools/classes");
    let mut found = Vec::new();
    collect_files(&classes, &mut found);
    let names: Vec<String> = found
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for class in [
        "PlannerExternalCalendarService.class",
        "CreateEventsRequestType.class",
        "CalendarEventType.class",
        "RequestUserMetadataType.class",
        "ActiveOrganisationHeaderType.class",
    ] {
        assert!(names.iter().any(|n| n == class), "{class} not in {names:?}");
    }
    println!(
        "wsimport compiled {} classes from the tool-friendly STAR WSDL",
        names.iter().filter(|n| n.ends_with(".class")).count()
    );
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The second opinion can fail: a CVR number of 1 (the bug this issue started from) is refused
/// by libxml2 and by xmlschema alike, and so is a broken list length.
#[test]
fn the_independent_validators_refuse_what_breaks_a_facet() {
    let Some(python) = python_validators() else {
        return;
    };
    let (_, catalog) = oio();
    let route = catalog
        .routes()
        .find(|r| r.operation.name == "AngivelseIndsend")
        .unwrap();
    let request = route.example_request(OffsetDateTime::now_utc());
    let identifier = example_value(&request, "VirksomhedIdentifikator");
    let quarter = example_value(&request, "Kvartal");
    let folder = tempfile::tempdir().unwrap();
    let wsdl = write_tools(&catalog, route.endpoint, &folder.path().join("contract"));
    let mut files = Vec::new();
    for (name, broken) in [
        ("cvr", request.replace(&format!(">{identifier}<"), ">1<")),
        ("list", request.replace(&format!(">{quarter}<"), ">1 2<")),
    ] {
        assert_ne!(broken, request);
        assert!(
            !route.validate(&broken).is_empty(),
            "our validator lets {name} through"
        );
        let file = folder.path().join(format!("{name}.xml"));
        std::fs::write(&file, broken).unwrap();
        files.push(file);
    }
    let output = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/xsd_crosscheck.py"))
        .arg(&wsdl)
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    for (file, validator) in [
        ("cvr.xml", "libxml2"),
        ("cvr.xml", "xmlschema"),
        ("list.xml", "libxml2"),
        ("list.xml", "xmlschema"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("INVALID {file} AngivelseIndsend_I {validator}:"))),
            "{validator} accepted {file}:\n{stdout}"
        );
    }
}

/// Every operation of every OIO fixture answers its own example request over mutual TLS in
/// enforce mode, in its port's SOAP version, with an answer its schema accepts; the journal
/// names service and operation as the WSDL spells them.
#[tokio::test]
async fn every_oio_operation_answers_over_mutual_tls_in_enforce_mode() {
    let (_, catalog) = oio();
    let pki = Pki::new();
    let server = serve_catalog(&pki, &catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let mut called = Vec::new();
    for route in catalog.routes() {
        let request = route.example_request(OffsetDateTime::now_utc());
        // HTTP header values are ASCII; an action that is not is left out (the Body routes).
        let action = route.operation.action.as_deref().filter(|a| a.is_ascii());
        let reply = client
            .soap_to(
                server.addr,
                &dfdg_mock::encoding::percent_encode(&route.endpoint.path),
                route.port.version,
                action,
                &request,
            )
            .await
            .unwrap();
        assert_eq!(
            reply.status, 200,
            "{}: {}",
            route.operation.name, reply.body
        );
        assert_eq!(
            route.validate_response(&reply.body),
            vec![],
            "{}",
            reply.body
        );
        called.push((route.endpoint.service.clone(), route.operation.name.clone()));
    }
    assert_eq!(called.len(), 13);
    let journal = server.journal();
    let journaled: Vec<(String, String)> = journal
        .calls
        .iter()
        .map(|c| {
            (
                c.record.service.clone().unwrap_or_default(),
                c.record.service_operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    for call in &called {
        assert!(journaled.contains(call), "{call:?} not in {journaled:?}");
    }
    assert!(journal.calls.iter().all(|c| c.record.findings.is_empty()));
    let soap12 = journal
        .calls
        .iter()
        .find(|c| c.record.service_operation.as_deref() == Some("YdelseOpret"))
        .unwrap();
    assert_eq!(soap12.record.soap_version.as_deref(), Some("1.2"));
}

const PAAMINDELSE_PATH: &str = "/service/P%C3%A5mindelse/1/P%C3%A5mindelseService.svc";

/// A UTF-16 WSDL with non-ASCII service and operation names: percent-encoded URLs reach it,
/// its example comes by `?example=` with the name percent-encoded, a scenario rule names it as
/// written, and the journal, the admin API and `calls` show and filter it as written.
#[tokio::test]
async fn non_ascii_names_work_in_urls_scenarios_journal_admin_api_and_cli() {
    let (_, catalog) = oio();
    let scenarios = tempfile::tempdir().unwrap();
    std::fs::write(
        scenarios.path().join("paamindelse.toml"),
        "[[rule]]\n\
         name = \"ukendt-borger\"\n\
         when.service = \"PåmindelseService\"\n\
         when.operation = \"getOIOPåmindelseSamlingHent\"\n\
         when.values.\"getOIOPåmindelseSamlingHent/BorgerCPR\" = \"0101700000\"\n\
         respond.fault = { code = 1010, message = \"Ukendt CPR-nummer på påmindelsen\" }\n",
    )
    .unwrap();
    let journal_path = scenarios.path().join("journal.sqlite");
    let pki = Pki::new();
    let server = TestServer::start_with(
        &pki,
        Options {
            catalog: Some(Arc::clone(&catalog)),
            journal: Some(journal_path.clone()),
            scenarios: Some(scenarios.path().to_owned()),
            admin: Some(AdminOptions::loopback()),
            ..Options::default()
        },
    )
    .await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    let listing = client.get(server.addr, "/").await.unwrap();
    let link = format!("{PAAMINDELSE_PATH}?example=getOIOP%C3%A5mindelseSamlingHent");
    assert!(listing.body.contains(&link), "{}", listing.body);
    assert!(
        listing
            .body
            .contains("- getOIOPåmindelseSamlingHent [read]"),
        "{}",
        listing.body
    );

    let wsdl = client
        .get(server.addr, &format!("{PAAMINDELSE_PATH}?wsdl"))
        .await
        .unwrap();
    assert_eq!(wsdl.status, 200, "{}", wsdl.body);
    // Decoded from UTF-16, served as UTF-8 and saying so.
    assert!(
        wsdl.body
            .starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
        "{}",
        wsdl.body
    );
    assert!(wsdl.body.contains("name=\"getOIOPåmindelseSamlingHent\""));
    assert!(
        wsdl.body.contains(&format!(
            "location=\"https://localhost:{}{PAAMINDELSE_PATH}\"",
            server.addr.port()
        )),
        "{}",
        wsdl.body
    );

    let example = client.get(server.addr, &link).await.unwrap();
    assert_eq!(example.status, 200, "{}", example.body);
    assert!(
        example
            .body
            .contains("<getOIOPåmindelseSamlingHent xmlns=\"urn:oio:example:paamindelse:1\">"),
        "{}",
        example.body
    );
    let unknown = client
        .get(
            server.addr,
            &format!("{PAAMINDELSE_PATH}?example=P%C3%A5mindelseSlet"),
        )
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.body.contains("has no operation 'PåmindelseSlet'"),
        "{}",
        unknown.body
    );
    let bad = client
        .get(server.addr, &format!("{PAAMINDELSE_PATH}?example=%C3"))
        .await
        .unwrap();
    assert_eq!(bad.status, 404);
    assert!(
        bad.body.contains("does not percent-decode to UTF-8"),
        "{}",
        bad.body
    );

    // The scripted fault for the unknown citizen; the default answer for anyone else.
    let request = example.body.replace(
        &format!(">{}<", example_value(&example.body, "BorgerCPR")),
        ">0101700000<",
    );
    let reply = client
        .soap_to(
            server.addr,
            PAAMINDELSE_PATH,
            SoapVersion::V11,
            None,
            &request,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(
        reply.body.contains("<ErrorCode>1010</ErrorCode>"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("Ukendt CPR-nummer på påmindelsen"),
        "{}",
        reply.body
    );
    let reply = client
        .soap_to(
            server.addr,
            PAAMINDELSE_PATH,
            SoapVersion::V11,
            None,
            &example.body,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("<getOIOPåmindelseSamlingHentResponse"),
        "{}",
        reply.body
    );

    // A SOAPAction in UTF-8 (HTTP allows the bytes; OIO actions carry Danish names).
    let create = catalog
        .routes()
        .find(|r| r.operation.name == "PåmindelseOpret")
        .unwrap();
    let action = create.operation.action.clone().unwrap();
    let request = http::Request::post(PAAMINDELSE_PATH)
        .header("host", "localhost")
        .header("content-type", "text/xml; charset=utf-8")
        .header(
            "soapaction",
            http::HeaderValue::from_bytes(format!("\"{action}\"").as_bytes()).unwrap(),
        )
        .body(http_body_util::Full::new(bytes::Bytes::from(
            create.example_request(OffsetDateTime::now_utc()),
        )))
        .unwrap();
    let reply = client.send(server.addr, request).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let journal = server.journal();
    let created = &journal.calls[0].record;
    assert_eq!(created.soap_action.as_deref(), Some(action.as_str()));
    assert_eq!(
        created.service_operation.as_deref(),
        Some("PåmindelseOpret")
    );

    let posts: Vec<_> = journal
        .calls
        .iter()
        .filter(|c| c.record.service_operation.as_deref() == Some("getOIOPåmindelseSamlingHent"))
        .collect();
    assert_eq!(posts.len(), 2);
    for call in &posts {
        assert_eq!(call.record.service.as_deref(), Some("PåmindelseService"));
        assert_eq!(
            call.record.service_operation.as_deref(),
            Some("getOIOPåmindelseSamlingHent")
        );
        assert_eq!(
            call.record.path,
            "/service/Påmindelse/1/PåmindelseService.svc"
        );
    }
    assert_eq!(
        posts[1].record.scenario_rule.as_deref(),
        Some("ukendt-borger")
    );

    let page = admin_json(
        server.admin(),
        "/api/calls?operation=getOIOP%C3%A5mindelseSamlingHent",
    )
    .await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 2, "{page}");
    let page = admin_json(
        server.admin(),
        "/api/calls?service=service%2FP%C3%A5mindelse",
    )
    .await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 3, "{page}");
    assert_eq!(page["calls"][1]["operation"], "getOIOPåmindelseSamlingHent");
    assert_eq!(
        page["calls"][0]["path"],
        "/service/Påmindelse/1/PåmindelseService.svc"
    );

    server.stop().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
        .args([
            "calls",
            "--operation",
            "getOIOPåmindelseSamlingHent",
            "--journal",
        ])
        .arg(&journal_path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("getOIOPåmindelseSamlingHent"))
            .count(),
        2,
        "{stdout}"
    );
}

/// The text of the first element named `local` in `xml`, whatever its attributes.
fn example_value(xml: &str, local: &str) -> String {
    let start = xml.find(&format!("<{local}")).unwrap();
    let start = start + xml[start..].find('>').unwrap() + 1;
    xml[start..start + xml[start..].find('<').unwrap()].to_owned()
}

/// Request bodies in UTF-16 (with a byte order mark) and ISO-8859-1 (declared, or named by the
/// Content-Type's charset) are understood; the answer is UTF-8. Bytes that are not what the
/// body declares get DFDG's 1014 naming the byte offset.
#[tokio::test]
async fn request_bodies_in_utf16_and_latin1_are_answered_and_wrong_bytes_get_1014_with_the_offset()
{
    let (_, catalog) = oio();
    let pki = Pki::new();
    let server = serve_catalog(&pki, &catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let route = catalog
        .routes()
        .find(|r| r.operation.name == "getOIOPåmindelseSamlingHent")
        .unwrap();
    let example = route.example_request(OffsetDateTime::now_utc());
    let post = |body: Vec<u8>, content_type: &'static str| {
        let request = http::Request::post(PAAMINDELSE_PATH)
            .header("host", "localhost")
            .header("content-type", content_type)
            .header("soapaction", "\"\"")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let client = &client;
        async move { client.send(server.addr, request).await.unwrap() }
    };

    let utf16 = example.replace("encoding=\"utf-8\"", "encoding=\"UTF-16\"");
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(utf16.encode_utf16().flat_map(u16::to_le_bytes));
    let reply = post(bytes, "text/xml").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .body
        .starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"));
    assert!(
        reply.content_type().contains("utf-8"),
        "{}",
        reply.content_type()
    );
    assert!(
        reply.body.contains("<getOIOPåmindelseSamlingHentResponse"),
        "{}",
        reply.body
    );

    // ISO-8859-1: æ is one byte (0xE6), declared in the XML declaration, then by the charset.
    let latin1 = |text: &str| -> Vec<u8> {
        text.chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap())
            .collect()
    };
    let named = example_value(&example, "BorgerCPR");
    let declared = example
        .replace("encoding=\"utf-8\"", "encoding=\"ISO-8859-1\"")
        .replace(&format!(">{named}<"), ">Søren Æbelø<");
    let reply = post(latin1(&declared), "text/xml").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let undeclared = example
        .replace("<?xml version=\"1.0\" encoding=\"utf-8\"?>", "")
        .replace(&format!(">{named}<"), ">Søren Æbelø<");
    let reply = post(latin1(&undeclared), "text/xml; charset=iso-8859-1").await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // The same Latin-1 bytes, neither declared nor named: 1014 with the offset of the first
    // non-ASCII byte (the å of the operation's name).
    let bytes = latin1(&undeclared);
    let offset = bytes.iter().position(|b| *b >= 0x80).unwrap();
    let reply = post(bytes, "text/xml").await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body.contains("<ErrorCode>1014</ErrorCode>"),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains(&format!("not UTF-8 at byte offset {offset} (line 1)")),
        "{}",
        reply.body
    );
    // Declared UTF-16 but sent in 8 bits.
    let reply = post(utf16.into_bytes(), "text/xml").await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("declares encoding 'UTF-16' but its bytes are 8-bit"),
        "{}",
        reply.body
    );
    let journal = server.journal();
    assert_eq!(
        journal.calls.len(),
        5,
        "every call is journaled, refused or not"
    );
}

fn check(dir: &Path, wsdl: &Path) -> (bool, String) {
    std::fs::create_dir_all(dir.join("scenarios")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
        .arg("check")
        .arg("--wsdl")
        .arg(wsdl)
        .arg("--scenarios")
        .arg(dir.join("scenarios"))
        .current_dir(dir)
        .env_remove("DFDG_MOCK_LOG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `check` on the OIO fixtures: every service loads, every generated message validates, the
/// WS-Policies are listed (the SAML one named as such) and nothing is a problem.
#[test]
fn check_loads_every_oio_fixture_self_checks_it_and_lists_its_policies() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = check(dir.path(), &oio_dir());
    println!("{text}");
    assert!(ok, "{text}");
    for service in [
        "BeskedService at /Besked/1/BeskedService.svc (SOAP 1.1",
        "VirksomhedOplysningService at /VirksomhedOplysning/1/VirksomhedOplysningService.svc",
        "SagService at /service/Sag/2",
        "PersonOpslagService at /service/PersonOpslag/1",
        "PåmindelseService at /service/Påmindelse/1/PåmindelseService.svc (SOAP 1.1, validation report): getOIOPåmindelseSamlingHent [read], PåmindelseOpret [write]",
        "DokumentService at /service/Dokument/1",
        "YdelseService at /service/Ydelse/3 (SOAP 1.2",
        "catalog: 7 WSDL file(s), 7 endpoint(s), 13 operation(s)",
        "self-check: generated an example request and a default answer for each of 13 operation(s); 13 validate against their own schemas",
        "WS-Policy 'SamlTokenPolicy' (binding DokumentBinding, operation DokumentHent; binding DokumentBinding, operation DokumentArkiver input): demands a SAML token",
        "WS-Policy 'TransportPolicy' (binding DokumentBinding): demands transport security (HTTPS), a client certificate (mutual TLS), WS-Addressing headers. Listed, not enforced",
        "SagTyper.xsd:15: the prefix 'sag' is not declared in this file",
    ] {
        assert!(text.contains(service), "missing {service:?} in:\n{text}");
    }
    assert!(!text.contains("problem:"), "{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");
}

/// `check` on STAR's own WSDL, when the fixture is there: it loads unchanged and self-checks.
#[test]
fn check_loads_and_self_checks_the_star_wsdl() {
    let Some(copy) = star_copy() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = check(dir.path(), copy.path());
    println!("{text}");
    assert!(ok, "{text}");
    assert!(text.contains("PlannerExternalCalendarService at /pjaktass/1/PlannerExternalCalendarService.svc (SOAP 1.1"), "{text}");
    assert!(
        text.contains("each of 5 operation(s); 5 validate"),
        "{text}"
    );
}

/// Files in the wrong encoding are problems naming file and line, and the others still load.
#[test]
fn wrongly_encoded_contracts_are_problems_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("wsdl");
    std::fs::create_dir_all(&catalog).unwrap();
    std::fs::copy(
        oio_dir().join("Annotated.wsdl"),
        catalog.join("Annotated.wsdl"),
    )
    .unwrap();
    // Latin-1 bytes, no declaration: not UTF-8 on line 3.
    let undeclared = b"<?xml version=\"1.0\"?>\n<!-- x -->\n<wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\" name=\"P\xe5mindelse\"/>\n";
    let offset = undeclared.iter().position(|b| *b == 0xE5).unwrap();
    std::fs::write(catalog.join("Undeclared.wsdl"), undeclared).unwrap();
    // Declares UTF-16, saved in 8 bits.
    std::fs::write(
        catalog.join("WrongWidth.wsdl"),
        "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\"/>\n",
    )
    .unwrap();
    let (ok, text) = check(dir.path(), &catalog);
    assert!(!ok, "{text}");
    assert!(
        text.contains("BeskedService at /Besked/1/BeskedService.svc"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Undeclared.wsdl:3: not UTF-8 at byte offset {offset} (line 3), and no encoding is declared")),
        "{text}"
    );
    assert!(
        text.contains("WrongWidth.wsdl:1: it declares encoding 'UTF-16' but its bytes are 8-bit, with no byte order mark; fix the declaration or save it as UTF-16 with a byte order mark"),
        "{text}"
    );
    assert!(text.contains("check found 2 problems"), "{text}");
}

/// A Python interpreter with suds, whose schema handling is as strict as wsimport's.
fn suds() -> Option<PathBuf> {
    suites::require(Suite::Python, suites::python(&["suds"]))
}

/// suds builds its client from the tool-friendly form of STAR's own WSDL, fetched over mutual
/// TLS, and calls an operation with STAR's headers in enforce mode; from the WSDL as published
/// it cannot build one.
#[tokio::test]
async fn suds_builds_its_client_from_the_tool_friendly_star_wsdl_and_calls_over_mutual_tls() {
    let Some(python) = suds() else {
        return;
    };
    let Some(copy) = star_copy() else {
        return;
    };
    let mut loaded = load(copy.path());
    let catalog = Arc::new(std::mem::take(&mut loaded.catalog));
    let pki = Pki::new();
    let server = serve_catalog(&pki, &catalog).await;
    let files = tempfile::tempdir().unwrap();
    let certificate = pki.oces3_client();
    let (ca, cert, key) = (
        files.path().join("ca.crt"),
        files.path().join("client.crt"),
        files.path().join("client.key"),
    );
    std::fs::write(&ca, pki.ca.cert_pem()).unwrap();
    std::fs::write(&cert, &certificate.cert_pem).unwrap();
    std::fs::write(&key, certificate.key_pem()).unwrap();
    let caller = format!("CVR:{CVR}-UUID:{OCES3_UUID}");
    let base = format!(
        "https://localhost:{}{}",
        server.addr.port(),
        catalog.endpoints[0].path
    );
    let run = |query: &str| {
        let mut command = std::process::Command::new(&python);
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/suds_client.py"))
            .args(["--wsdl", &format!("{base}?{query}")])
            .arg("--ca")
            .arg(&ca)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--operation", "GetResources", "--caller", &caller]);
        // The server runs on this test's runtime; the script bounds each request itself.
        tokio::task::spawn_blocking(move || command.output())
    };
    let published = run("wsdl").await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&published.stdout);
    assert!(!published.status.success(), "{stdout}");
    assert!(
        stdout.contains("cannot build the client: TypeNotFound"),
        "{stdout}"
    );

    let tools = run("wsdl&tools").await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&tools.stdout);
    assert!(
        tools.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&tools.stderr)
    );
    assert!(
        stdout.contains(
            "built PlannerExternalCalendarService CreateEvents,DeleteEvents,GetEvents,GetResources,UpdateEvents"
        ),
        "{stdout}"
    );
    let journal = server.journal();
    let call = journal
        .calls
        .iter()
        .find(|c| c.record.method == "POST")
        .expect("suds's call is journaled");
    assert_eq!(
        call.record.service_operation.as_deref(),
        Some("GetResources")
    );
    assert!(
        call.record.findings.is_empty(),
        "{:?}",
        call.record.findings
    );
    assert_eq!(call.record.identity.as_ref().unwrap().caller_id, caller);
    let receipt = &call.record.receipts[0];
    assert!(
        stdout.contains(&format!("called GetResources receipt {receipt}")),
        "{stdout}"
    );
}
