//! Welcome packs, made by the real binary: the files and their modes, the PKCS#12 opening with
//! the printed password (openssl), every example request valid against the catalog's schema,
//! the pack's WSDLs loading on their own, the registry entry, the zip holding the same files;
//! then the pack's first example command, run as written against the real server, completes
//! step 1 with an identity the systemforvalter accepts. libxml2 (lxml) gives a second opinion
//! on the requests, loading the pack's own WSDLs and their imports from the pack. Refusals: unknown service names (with a
//! "did you mean"), an existing pack or certificate without --force, a small supplier with no
//! read operation.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use dfdg_mock::config::{CatalogConfig, ValidationMode};
use dfdg_mock::identity::CallerIdentity;
use dfdg_mock::journal::Outcome;
use dfdg_mock::supplier::{identity_findings, Category, Registry};
use dfdg_mock::tls::TlsMaterial;
use dfdg_mock::wsdl::Catalog;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::suites::{self, Suite};
use crate::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_dfdg-mock");
const SUPPLIER: &str = "Testleverandør ApS";

fn shipped_wsdl() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl")
}

fn catalog_of(dirs: Vec<PathBuf>) -> Catalog {
    let loaded = Catalog::load(&CatalogConfig {
        dirs,
        validation: ValidationMode::Report,
        services: HashMap::new(),
    });
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded.catalog
}

/// Runs `dfdg-mock welcome-pack` in `dir` for the small test supplier with `services`.
fn welcome_pack(dir: &Path, services: &str, extra: &[&str]) -> Output {
    welcome_pack_to(dir, services, "packs/testleverandoer", extra)
}

/// Same, into folder `out`.
fn welcome_pack_to(dir: &Path, services: &str, out: &str, extra: &[&str]) -> Output {
    let wsdl = shipped_wsdl();
    let mut args = vec![
        "welcome-pack",
        "--supplier",
        SUPPLIER,
        "--cvr",
        CVR,
        "--category",
        "small",
        "--services",
        services,
        "--out",
        out,
        "--certs-dir",
        "certs",
        "--suppliers",
        "suppliers.toml",
        "--wsdl",
        wsdl.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Command::new(BINARY)
        .args(&args)
        .current_dir(dir)
        .env_remove("DFDG_MOCK_CERTS_DIR")
        .env_remove("DFDG_MOCK_SUPPLIERS")
        .env_remove("DFDG_MOCK_WSDL")
        .output()
        .expect("run dfdg-mock")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The password printed once: the text after "PKCS#12 password (shown once, in no file): ".
fn printed_password(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PKCS#12 password (shown once, in no file): "))
        .unwrap_or_else(|| panic!("no password line in:\n{stdout}"));
    line.trim().to_owned()
}

/// Every file under `dir`, relative and `/`-separated.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                out.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn caller_of(cert: &Path) -> CallerIdentity {
    let pem = std::fs::read(cert).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    CallerIdentity::from_der(&der).unwrap()
}

/// The first command of the pack's commands.md that sends a request: its first `curl` line.
fn first_curl_command(commands: &str) -> String {
    commands
        .lines()
        .find(|l| l.starts_with("curl "))
        .expect("no curl line in commands.md")
        .to_owned()
}

/// Runs `script` with bash in `dir`, with `URL` set, off the test's runtime thread.
async fn bash_in(dir: &Path, script: Vec<String>, url: String) -> Output {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(&script)
            .current_dir(dir)
            .env("URL", url)
            .output()
            .expect("run bash")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_small_suppliers_welcome_pack_plays_the_whole_onboarding_test() {
    let dir = tempfile::tempdir().unwrap();
    let output = welcome_pack(
        dir.path(),
        "PersonStatusService,codelistservice",
        &["--zip"],
    );
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("PRIVATE KEY") && !stderr.contains("PRIVATE KEY"));
    let password = printed_password(&stdout);
    assert_eq!(password.len(), 20, "{password}");
    assert!(stdout.contains("created a test PKI in certs"), "{stdout}");
    // The first registration ends open mode: said, with the demo certificate that now gets 1012.
    let demo = caller_of(&dir.path().join("certs/demo-client.crt"));
    assert!(
        stderr.contains("open mode") && stderr.contains(&demo.caller_id),
        "{stderr}"
    );

    // The files, and nothing of the services it may not call.
    let pack = dir.path().join("packs/testleverandoer");
    let files = files_under(&pack);
    for expected in [
        "README.md",
        "endpoints.md",
        "commands.md",
        "run-example.sh",
        "ca.crt",
        "client.crt",
        "client.key",
        "client-java.p12",
        "client-dotnet.p12",
        "requests/PersonStatusService-GetVariablePersonStatus.xml",
        "requests/CodeListService-GetCodeList.xml",
        "requests/CodeListService-GetCodeListNames.xml",
        "wsdl/PersonStatusService/PersonStatusService.wsdl",
        "wsdl/PersonStatusService/common/RequestUserMetadata.xsd",
        "wsdl/PersonStatusService/common/RequestUserStructure.xsd",
        "wsdl/CodeListService/CodeListService.wsdl",
        "wsdl/CodeListService/common/ActiveOrganisationHeader.xsd",
        "wsdl-tools/PersonStatusService/PersonStatusService.wsdl",
        "wsdl-tools/PersonStatusService/common/RequestUserMetadata.xsd",
        "wsdl-tools/CodeListService/CodeListService.wsdl",
    ] {
        assert!(files.contains(expected), "{expected} missing: {files:?}");
    }
    assert!(files.iter().all(|f| !f.contains("Jobcenter")), "{files:?}");
    assert_eq!(mode(&pack.join("client.key")), 0o600);
    assert_eq!(mode(&pack.join("client-java.p12")), 0o600);
    assert_eq!(mode(&pack.join("client-dotnet.p12")), 0o600);
    assert_eq!(mode(&pack.join("run-example.sh")), 0o755);
    assert_eq!(
        std::fs::read(pack.join("ca.crt")).unwrap(),
        std::fs::read(dir.path().join("certs/ca.crt")).unwrap()
    );
    // The password is in no file of the pack.
    for file in &files {
        let bytes = std::fs::read(pack.join(file)).unwrap();
        assert!(
            !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "{file} holds the password"
        );
    }

    // Both PKCS#12 files open with the printed password, and only with it.
    for p12 in ["client-java.p12", "client-dotnet.p12"] {
        let p12 = pack.join(p12);
        let opened = Command::new("openssl")
            .args(["pkcs12", "-info", "-nokeys", "-in"])
            .arg(&p12)
            .arg("-passin")
            .arg(format!("pass:{password}"))
            .output()
            .expect("openssl");
        let (info, error) = text(&opened);
        assert!(
            opened.status.success(),
            "{}: {info}\n{error}",
            p12.display()
        );
        assert!(info.contains("BEGIN CERTIFICATE"), "{info}");
        let wrong = Command::new("openssl")
            .args(["pkcs12", "-info", "-nokeys", "-passin", "pass:wrong", "-in"])
            .arg(&p12)
            .output()
            .expect("openssl");
        assert!(!wrong.status.success());
    }

    // The certificate's identity, printed and registered.
    let identity = caller_of(&pack.join("client.crt"));
    assert!(
        identity.caller_id.starts_with("CVR:91234567-UUID:"),
        "{}",
        identity.caller_id
    );
    assert!(
        stdout.contains(&format!("caller id:   {}", identity.caller_id)),
        "{stdout}"
    );
    let registry = Registry::load(&dir.path().join("suppliers.toml")).unwrap();
    let supplier = registry.find(&identity).expect("registered").clone();
    assert_eq!(supplier.name, SUPPLIER);
    assert_eq!(supplier.cvr, CVR);
    assert_eq!(supplier.category, Category::Small);
    assert_eq!(
        supplier.services,
        ["PersonStatusService", "CodeListService"]
    );
    assert_eq!(
        supplier.identities,
        std::slice::from_ref(&identity.caller_id)
    );

    // Every example request validates and names the certificate as its user.
    let catalog = Arc::new(catalog_of(vec![shipped_wsdl()]));
    let mut examples = 0;
    for endpoint in &catalog.endpoints {
        for port in &endpoint.ports {
            for operation in &port.operations {
                let file = pack.join(format!(
                    "requests/{}-{}.xml",
                    endpoint.service, operation.name
                ));
                if !file.exists() {
                    continue;
                }
                examples += 1;
                let request = std::fs::read_to_string(&file).unwrap();
                let route = catalog
                    .route(
                        &endpoint.path,
                        port.version,
                        operation.action.as_deref(),
                        &operation.input_name,
                    )
                    .unwrap();
                assert_eq!(route.validate(&request), vec![], "{request}");
                let envelope = dfdg_mock::soap::parse_envelope(&request).unwrap();
                let headers = &envelope.star_headers;
                assert_eq!(
                    identity_findings(&identity, Some(&supplier), headers),
                    vec![],
                    "{request}"
                );
                let user = headers.request_user.as_ref().unwrap();
                assert_eq!(user.user_identifier.as_deref(), Some(&*identity.caller_id));
                assert_eq!(user.user_type.as_deref(), Some("3"));
                assert_eq!(user.organisation_code.as_deref(), Some(CVR));
            }
        }
    }
    assert_eq!(examples, 3);

    // The pack's WSDLs load on their own: their imports resolve inside the pack.
    let packed = catalog_of(vec![
        pack.join("wsdl/PersonStatusService"),
        pack.join("wsdl/CodeListService"),
    ]);
    assert_eq!(packed.endpoints.len(), 2);
    let wsdl =
        std::fs::read_to_string(pack.join("wsdl/PersonStatusService/PersonStatusService.wsdl"))
            .unwrap();
    assert!(
        wsdl.contains(
            "location=\"https://localhost:8443/PersonStatusService/20/PersonStatusService.svc\""
        ),
        "{wsdl}"
    );

    // The README walks through the three steps with this supplier's details.
    let readme = std::fs::read_to_string(pack.join("README.md")).unwrap();
    for expected in [
        SUPPLIER,
        CVR,
        identity.caller_id.as_str(),
        "Trin 1",
        "Step 3",
        "PersonStatusService, CodeListService",
        "dfdg-mock confirm <MessageIdentifier> --supplier 'Testleverandør ApS'",
        "small",
    ] {
        assert!(
            readme.contains(expected),
            "{expected} not in README:\n{readme}"
        );
    }
    let endpoints = std::fs::read_to_string(pack.join("endpoints.md")).unwrap();
    assert!(
        endpoints.contains("https://localhost:8443/CodeListService/1/CodeListService.svc"),
        "{endpoints}"
    );
    assert!(endpoints.contains("| GetCodeList | read |"), "{endpoints}");

    // The zip holds the same files under the pack's folder name, the key still 0600.
    let archive = std::fs::File::open(dir.path().join("packs/testleverandoer.zip")).unwrap();
    let mut archive = zip::ZipArchive::new(archive).unwrap();
    let names: BTreeSet<String> = archive
        .file_names()
        .map(|n| {
            n.strip_prefix("testleverandoer/")
                .unwrap_or_else(|| panic!("{n} outside the pack folder"))
                .to_owned()
        })
        .collect();
    assert_eq!(names, files);
    let key = archive.by_name("testleverandoer/client.key").unwrap();
    assert_eq!(key.unix_mode().map(|m| m & 0o777), Some(0o600));
    drop(key);

    // Step 1 as written: the real server with this certs folder and the catalog.
    let certs = dir.path().join("certs");
    let tls = TlsMaterial::from_files(
        &certs.join("server.crt"),
        &certs.join("server.key"),
        &[&certs.join("ca.crt")],
    )
    .unwrap();
    let server = TestServer::start_with(
        &Pki::new(),
        Options {
            catalog: Some(Arc::clone(&catalog)),
            tls: Some(tls),
            // The registry the pack wrote: the supplier's calls are authorized, not open.
            suppliers: Some(Arc::new(
                dfdg_mock::supplier::LiveRegistry::load(&dir.path().join("suppliers.toml"), true)
                    .unwrap(),
            )),
            ..Options::default()
        },
    )
    .await;
    let url = format!("https://127.0.0.1:{}", server.addr.port());

    let script = bash_in(&pack, vec!["run-example.sh".into()], url.clone()).await;
    let (answer, error) = text(&script);
    assert!(script.status.success(), "{answer}\n{error}");
    assert!(
        answer.contains("GetVariablePersonStatusResponse"),
        "{answer}"
    );
    // The script says which receipt it got, and the exact command of step 3.
    let printed_receipt = error
        .lines()
        .find_map(|line| line.strip_prefix("Kvittering / receipt: "))
        .unwrap_or_else(|| panic!("no receipt printed:\n{error}"))
        .to_owned();
    assert_eq!(
        Some(printed_receipt.as_str()),
        element_text(&answer, "ServiceRequestLogReferenceIdentifier"),
        "a lookup without a ServiceReceipt: its log reference is the receipt"
    );
    let confirm_command = error
        .lines()
        .find_map(|line| line.strip_prefix("Trin 3 / step 3: "))
        .unwrap_or_else(|| panic!("no confirm command printed:\n{error}"))
        .to_owned();
    assert_eq!(
        confirm_command,
        format!("dfdg-mock confirm {printed_receipt} --supplier 'Testleverandør ApS'")
    );

    let commands = std::fs::read_to_string(pack.join("commands.md")).unwrap();
    assert!(
        commands.contains("openssl s_client -connect localhost:8443"),
        "{commands}"
    );
    let first = first_curl_command(&commands);
    let run = bash_in(&pack, vec!["-c".into(), first.clone()], url).await;
    let (answer, error) = text(&run);
    assert!(run.status.success(), "{first}\n{answer}\n{error}");
    assert!(
        answer.contains("ServiceRequestLogReferenceIdentifier"),
        "{answer}"
    );

    let journal = server.journal();
    assert_eq!(journal.calls.len(), 2);
    for call in &journal.calls {
        let record = &call.record;
        assert_eq!(record.http_status, 200);
        assert_eq!(record.outcome, Outcome::Receipt);
        assert_eq!(record.service.as_deref(), Some("PersonStatusService"));
        // Step 1 as the registry sees it: an allowed call of this supplier (strict mode on).
        assert_eq!(record.supplier.as_deref(), Some("Testleverandør ApS"));
        assert_eq!(record.authorization.as_deref(), Some("allowed"));
        assert_eq!(
            record.service_operation.as_deref(),
            Some("GetVariablePersonStatus")
        );
        assert_eq!(
            record.identity.as_ref().map(|i| i.caller_id.as_str()),
            Some(identity.caller_id.as_str())
        );
        assert!(record.findings.is_empty(), "{:?}", record.findings);
        let checks = dfdg_mock::onboarding::checks(record);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        assert!(
            record.identity_findings.is_empty(),
            "{:?}",
            record.identity_findings
        );
        assert!(!record.receipts.is_empty());
        // The systemforvalter's identity checks on the request as received: none fails.
        let received = String::from_utf8(record.request_body.to_vec()).unwrap();
        let envelope = dfdg_mock::soap::parse_envelope(&received).unwrap();
        assert_eq!(
            identity_findings(&identity, Some(&supplier), &envelope.star_headers),
            vec![]
        );
    }

    // The rest of STAR's test, as the supplier and the systemforvalter play it: steps 1 and 2
    // are done (exit 1: incomplete), the supplier confirms the receipt GUID from the answer it
    // got, and the status is complete (exit 0) with the HTML report written.
    let receipt = printed_receipt;
    assert_eq!(journal.calls[1].record.receipts, vec![receipt.clone()]);
    let registry = dir.path().join("suppliers.toml");
    let onboarding = |args: &[&str]| {
        Command::new(BINARY)
            .args(args)
            .arg("--journal")
            .arg(&server.journal_path)
            .arg("--suppliers")
            .arg(&registry)
            .env_remove("DFDG_MOCK_JOURNAL")
            .env_remove("DFDG_MOCK_SUPPLIERS")
            .output()
            .unwrap()
    };
    let status = onboarding(&["onboarding", "status", "--json", "--supplier", SUPPLIER]);
    assert_eq!(status.status.code(), Some(1), "{status:?}");
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let entry = &json["suppliers"][0];
    assert_eq!(entry["call_received"]["done"], true, "{json}");
    assert_eq!(entry["identity_checked"]["done"], true, "{json}");
    assert_eq!(entry["receipt_confirmed"]["done"], false, "{json}");

    // The command exactly as printed (plus where this test keeps journal and registry).
    let printed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} --journal \"$1\" --suppliers \"$2\"",
            confirm_command.replacen("dfdg-mock", BINARY, 1)
        ))
        .arg("bash")
        .arg(&server.journal_path)
        .arg(&registry)
        .env_remove("DFDG_MOCK_JOURNAL")
        .env_remove("DFDG_MOCK_SUPPLIERS")
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let confirmed = onboarding(&["confirm", &receipt, "--supplier", SUPPLIER]);
    assert!(confirmed.status.success(), "{confirmed:?}");
    let report = dir.path().join("rapport.html");
    let status = onboarding(&[
        "onboarding",
        "status",
        "--supplier",
        SUPPLIER,
        "--html",
        report.to_str().unwrap(),
    ]);
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(
        page.contains(&identity.caller_id),
        "report lacks the caller id"
    );
    assert!(page.contains(&receipt), "report lacks the receipt");
}

#[tokio::test]
async fn a_medium_suppliers_commands_run_as_written_against_the_url_of_the_pack() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dfdg_mock::pki::PkiPaths::new(dir.path().join("certs"));
    dfdg_mock::pki::init(&certs, &[], false).unwrap();
    let catalog = Arc::new(catalog_of(vec![shipped_wsdl()]));
    let tls = TlsMaterial::from_files(
        &certs.server_cert(),
        &certs.server_key(),
        &[&certs.ca_cert()],
    )
    .unwrap();
    let server = TestServer::start_with(
        &Pki::new(),
        Options {
            catalog: Some(Arc::clone(&catalog)),
            tls: Some(tls),
            // The registry the pack wrote: the supplier's calls are authorized, not open.
            suppliers: Some(Arc::new(
                dfdg_mock::supplier::LiveRegistry::load(&dir.path().join("suppliers.toml"), true)
                    .unwrap(),
            )),
            ..Options::default()
        },
    )
    .await;
    let url = format!("https://127.0.0.1:{}", server.addr.port());

    // SOAP 1.2 (Jobnet) and a write operation (medium may write), addressed to this server.
    let wsdl = shipped_wsdl();
    let output = Command::new(BINARY)
        .args([
            "welcome-pack",
            "--supplier",
            "Mellemleverandør A/S",
            "--cvr",
            "98765432",
            "--category",
            "medium",
            "--services",
            "JobnetCitizenStatusService,JobcenterMessageService",
            "--out",
            "mellem",
            "--url",
            &url,
            "--suppliers",
            "suppliers.toml",
            "--wsdl",
            wsdl.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .env_remove("DFDG_MOCK_CERTS_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains("created a test PKI"), "{stdout}");
    let pack = dir.path().join("mellem");
    let identity = caller_of(&pack.join("client.crt"));
    let commands = std::fs::read_to_string(pack.join("commands.md")).unwrap();
    let curls: Vec<&str> = commands
        .lines()
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert_eq!(curls.len(), 3, "{commands}");
    assert!(
        commands.contains("Content-Type: application/soap+xml; charset=utf-8; action="),
        "{commands}"
    );

    // Every command exactly as written, with no URL in the environment.
    let run = |script: Vec<String>| {
        let pack = pack.clone();
        tokio::task::spawn_blocking(move || {
            Command::new("bash")
                .args(&script)
                .current_dir(pack)
                .env_remove("URL")
                .output()
                .unwrap()
        })
    };
    for curl in &curls {
        let output = run(vec!["-c".into(), (*curl).to_owned()]).await.unwrap();
        let (answer, error) = text(&output);
        assert!(output.status.success(), "{curl}\n{answer}\n{error}");
    }
    let script = run(vec![
        "run-example.sh".into(),
        "SaveAvailabilityAssessment".into(),
    ])
    .await
    .unwrap();
    let (answer, error) = text(&script);
    assert!(script.status.success(), "{answer}\n{error}");
    assert!(answer.contains("MessageIdentifier"), "{answer}");
    let unknown = run(vec!["run-example.sh".into(), "NoSuchOperation".into()])
        .await
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));

    let s_client = commands
        .lines()
        .find(|l| l.starts_with("openssl s_client"))
        .expect("an openssl s_client line");
    assert!(s_client.contains("-verify_ip 127.0.0.1"), "{s_client}");
    let handshake = run(vec!["-c".into(), s_client.to_owned()]).await.unwrap();
    let (out, error) = text(&handshake);
    assert!(handshake.status.success(), "{s_client}\n{out}\n{error}");

    let journal = server.journal();
    assert_eq!(journal.calls.len(), 4);
    let mut operations = BTreeSet::new();
    for call in &journal.calls {
        let record = &call.record;
        assert_eq!(record.http_status, 200, "{:?}", record.detail);
        assert_eq!(record.outcome, Outcome::Receipt);
        assert!(record.findings.is_empty(), "{:?}", record.findings);
        assert_eq!(
            record.identity.as_ref().map(|i| i.caller_id.as_str()),
            Some(identity.caller_id.as_str())
        );
        let checks = dfdg_mock::onboarding::checks(record);
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
        assert!(
            record.identity_findings.is_empty(),
            "{:?}",
            record.identity_findings
        );
        operations.insert(record.service_operation.clone().unwrap_or_default());
    }
    assert_eq!(
        operations,
        BTreeSet::from([
            "GetBorgerstatus".to_owned(),
            "GetSelvbookingMoedetilbud".to_owned(),
            "SaveAvailabilityAssessment".to_owned()
        ])
    );
    let versions: BTreeSet<Option<String>> = journal
        .calls
        .iter()
        .map(|c| c.record.soap_version.clone())
        .collect();
    assert_eq!(versions.len(), 2, "{versions:?}");
}

/// libxml2 (Python lxml) and `xmlschema` load each tool-friendly WSDL of the pack from the pack
/// folder, following its imports there, and validate the pack's requests for that service; the
/// pack's README says which folder is for wsimport, svcutil and suds.
#[test]
fn libxml2_and_xmlschema_validate_the_packs_requests_against_the_packs_tool_friendly_wsdls() {
    let Some(python) = suites::require(Suite::Python, suites::python(&["lxml", "xmlschema"]))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = welcome_pack(dir.path(), "PersonStatusService,CodeListService", &[]);
    assert!(output.status.success(), "{:?}", text(&output));
    let pack = dir.path().join("packs/testleverandoer");
    let readme = std::fs::read_to_string(pack.join("README.md")).unwrap();
    assert!(
        readme.contains("| `wsdl-tools/` | de samme WSDL'er til wsimport, svcutil og suds"),
        "{readme}"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/xsd_crosscheck.py");
    let mut valid = 0;
    for service in ["PersonStatusService", "CodeListService"] {
        let requests: Vec<PathBuf> = files_under(&pack.join("requests"))
            .into_iter()
            .filter(|f| f.starts_with(&format!("{service}-")))
            .map(|f| pack.join("requests").join(f))
            .collect();
        assert!(!requests.is_empty());
        let output = Command::new(&python)
            .arg(&script)
            .arg(pack.join(format!("wsdl-tools/{service}/{service}.wsdl")))
            .args(&requests)
            .output()
            .expect("python3 with lxml and xmlschema (pip install lxml==6.1.3 xmlschema==4.3.2)");
        let (stdout, stderr) = text(&output);
        assert!(
            output.status.success(),
            "libxml2 or xmlschema disagrees for {service}:\n{stdout}{stderr}"
        );
        valid += stdout.lines().filter(|l| l.starts_with("valid ")).count();
    }
    // Each request: two header blocks and the Body element.
    assert_eq!(valid, 3 * 3);
}

#[test]
fn unknown_services_are_refused_with_a_suggestion_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let output = welcome_pack(dir.path(), "PersonStatusServic,CodeListService", &[]);
    let (stdout, stderr) = text(&output);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stderr.contains(
            "unknown service \"PersonStatusServic\"; did you mean \"PersonStatusService\"?"
        ),
        "{stderr}"
    );
    assert!(!dir.path().join("packs").exists());
    assert!(!dir.path().join("certs").exists());
    assert!(!dir.path().join("suppliers.toml").exists());
}

#[test]
fn a_small_suppliers_pack_lists_write_operations_as_refused_and_has_no_example_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let output = welcome_pack(
        dir.path(),
        "PersonStatusService,JobcenterMessageService",
        &[],
    );
    assert!(output.status.success(), "{:?}", text(&output));
    let pack = dir.path().join("packs/testleverandoer");
    let endpoints = std::fs::read_to_string(pack.join("endpoints.md")).unwrap();
    let line = endpoints
        .lines()
        .find(|l| l.starts_with("| SaveAvailabilityAssessment | write |"))
        .unwrap_or_else(|| panic!("{endpoints}"));
    assert!(line.contains("4575"), "{line}");
    let requests = files_under(&pack.join("requests"));
    assert_eq!(
        requests,
        BTreeSet::from(["PersonStatusService-GetVariablePersonStatus.xml".to_owned()])
    );
    // The service is registered (calls to it are refused by category, 4575, not by service).
    let registry = Registry::load(&dir.path().join("suppliers.toml")).unwrap();
    assert_eq!(
        registry.suppliers()[0].services,
        ["PersonStatusService", "JobcenterMessageService"]
    );
}

#[test]
fn a_small_supplier_with_only_write_services_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = welcome_pack(dir.path(), "JobcenterMessageService", &[]);
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("may only read"), "{stderr}");
    assert!(!dir.path().join("packs").exists());
}

#[test]
fn an_existing_pack_or_certificate_is_kept_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let first = welcome_pack(dir.path(), "PersonStatusService", &[]);
    assert!(first.status.success(), "{:?}", text(&first));
    let first_id = caller_of(&dir.path().join("packs/testleverandoer/client.crt")).caller_id;

    let again = welcome_pack(dir.path(), "PersonStatusService", &[]);
    let (_, stderr) = text(&again);
    assert!(!again.status.success());
    assert!(stderr.contains("--force"), "{stderr}");

    // Another folder, same supplier: the certificate in certs/ is not overwritten either.
    let elsewhere = welcome_pack_to(dir.path(), "PersonStatusService", "packs/other", &[]);
    let (_, stderr) = text(&elsewhere);
    assert!(!elsewhere.status.success());
    assert!(stderr.contains("already has a certificate"), "{stderr}");
    assert!(!dir.path().join("packs/other").exists());

    let forced = welcome_pack(dir.path(), "CodeListService", &["--force"]);
    let (stdout, stderr) = text(&forced);
    assert!(forced.status.success(), "{stdout}\n{stderr}");
    let pack = dir.path().join("packs/testleverandoer");
    let second_id = caller_of(&pack.join("client.crt")).caller_id;
    assert_ne!(first_id, second_id);
    // The old pack's requests are gone; the registry keeps both certificates.
    assert!(!pack
        .join("requests/PersonStatusService-GetVariablePersonStatus.xml")
        .exists());
    let registry = Registry::load(&dir.path().join("suppliers.toml")).unwrap();
    assert_eq!(registry.suppliers().len(), 1);
    assert_eq!(registry.suppliers()[0].identities, [first_id, second_id]);
    assert_eq!(registry.suppliers()[0].services, ["CodeListService"]);

    // The same name with another CVR is another organisation: refused without --force.
    let output = Command::new(BINARY)
        .args([
            "welcome-pack",
            "--supplier",
            SUPPLIER,
            "--cvr",
            "98765432",
            "--category",
            "small",
            "--services",
            "CodeListService",
            "--out",
            "packs/third",
            "--wsdl",
        ])
        .arg(shipped_wsdl())
        .current_dir(dir.path())
        .env_remove("DFDG_MOCK_CERTS_DIR")
        .env_remove("DFDG_MOCK_SUPPLIERS")
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("with CVR 91234567, not 98765432"),
        "{stderr}"
    );
    assert!(!dir.path().join("packs/third").exists());
}

/// `?example=` served to a caller names that caller's certificate in the STAR headers, so the
/// example passes the identity checks when sent with it.
#[tokio::test]
async fn the_example_served_to_a_caller_names_its_certificate() {
    let pki = Pki::new();
    let catalog = Arc::new(catalog_of(vec![shipped_wsdl()]));
    let server = TestServer::start_with(
        &pki,
        Options {
            catalog: Some(catalog.clone()),
            ..Options::default()
        },
    )
    .await;
    let path = "/PersonStatusService/20/PersonStatusService.svc";
    for certificate in [pki.oces3_client(), pki.oces2_client()] {
        let identity = CallerIdentity::from_der(&certificate.cert_der).unwrap();
        let reply = pki
            .client_with(Some(&certificate))
            .get(
                server.addr,
                &format!("{path}?example=GetVariablePersonStatus"),
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        let envelope = dfdg_mock::soap::parse_envelope(&reply.body).unwrap();
        let user = envelope.star_headers.request_user.as_ref().unwrap();
        assert_eq!(
            user.user_identifier.as_deref(),
            Some(identity.caller_id.as_str())
        );
        assert_eq!(user.user_type.as_deref(), Some("3"));
        assert_eq!(user.organisation_code.as_deref(), Some(CVR));
        assert_eq!(
            identity_findings(&identity, None, &envelope.star_headers),
            vec![],
            "{}",
            reply.body
        );
        // Still schema-valid with the caller's values in it.
        let route = catalog
            .route(
                path,
                dfdg_mock::soap::SoapVersion::V11,
                Some("urn:dfdg-mock:PersonStatusService:20#GetVariablePersonStatus"),
                &dfdg_mock::soap::QualifiedName {
                    namespace: "urn:dfdg-mock:PersonStatusService:20".to_owned(),
                    local: "GetVariablePersonStatus".to_owned(),
                },
            )
            .unwrap();
        assert_eq!(route.validate(&reply.body), vec![], "{}", reply.body);
    }
}
