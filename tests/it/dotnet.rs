//! .NET end-to-end with Mono's WCF, as a supplier on .NET Framework works: `dfdg-mock
//! welcome-pack` makes a large supplier's pack and registers it; Mono opens the pack's
//! `client-dotnet.p12` with the printed password (not with another; the AES `client-java.p12`
//! is tried and its verdict printed); the pack's ca.crt goes into the user's Mono trust store
//! (cert-sync, in a HOME of the test's own); tests/e2e/dotnet/DfdgClient.cs, compiled with mcs,
//! calls over `BasicHttpBinding` with `BasicHttpSecurityMode.Transport` and
//! `HttpClientCredentialType.Certificate` (SOAP 1.2 through the same HTTPS transport with a SOAP
//! 1.2 encoder), gets a receipt and a DFDG fault, and posts the pack's example request by hand
//! with `Expect: 100-continue` as .NET does on every POST. Mono speaks TLS 1.2 at most: the
//! journal shows every call on TLS 1.2 under the pack's caller id, and the answered ones
//! under the registered supplier, allowed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::served::{after, check_run, dfdg_mock, run_bounded, succeeded, text, Served};
use crate::suites::{self, Mono, Suite};

/// mcs and the client each finish well within this on a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(180);
const SUPPLIER: &str = "Testleverandør ApS";

/// `mono client.exe args` with `home` as HOME (its Mono trust store).
fn client(mono: &Mono, exe: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(&mono.mono);
    command.arg(exe).args(args).env("HOME", home);
    run_bounded(command, LIMIT)
}

#[test]
fn a_mono_wcf_client_with_the_welcome_packs_pkcs12_calls_over_tls12_with_expect_100_continue() {
    let Some(mono) = suites::require(Suite::Dotnet, suites::mono()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let wsdl = crate::served::shipped_wsdl();
    let made = dfdg_mock(
        dir,
        &[
            "welcome-pack",
            "--supplier",
            SUPPLIER,
            "--cvr",
            "91234567",
            "--category",
            "large",
            "--services",
            "JobcenterMessageService,PersonStatusService,JobnetCitizenStatusService",
            "--out",
            "pack",
            "--certs-dir",
            "certs",
            "--suppliers",
            "suppliers.toml",
            "--wsdl",
            wsdl.to_str().unwrap(),
        ],
    );
    let (made, _) = text(&made);
    let caller = after(&made, "caller id:").to_owned();
    let password = after(&made, "PKCS#12 password (shown once, in no file): ").to_owned();
    let pack = dir.join("pack");

    let exe = dir.join("client.exe");
    let sources: Vec<PathBuf> = ["StarServices.cs", "DfdgClient.cs"]
        .iter()
        .map(|f| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/e2e/dotnet")
                .join(f)
        })
        .collect();
    let mut mcs = Command::new(&mono.mcs);
    mcs.args([
        "-nologo",
        "-r:System.ServiceModel",
        "-r:System.Runtime.Serialization",
        "-r:System.Xml",
    ])
    .arg(format!("-out:{}", exe.display()))
    .args(&sources);
    succeeded("mcs", &run_bounded(mcs, LIMIT));

    // Mono opens the pack's .NET PKCS#12 with the printed password, and only with it.
    let home = dir.join("home");
    std::fs::create_dir(&home).unwrap();
    let dotnet_p12 = pack.join("client-dotnet.p12");
    let opened = client(
        &mono,
        &exe,
        &home,
        &["open", dotnet_p12.to_str().unwrap(), &password],
    );
    succeeded("X509Certificate2(client-dotnet.p12)", &opened);
    println!("{}", text(&opened).0.trim());
    let wrong = client(
        &mono,
        &exe,
        &home,
        &["open", dotnet_p12.to_str().unwrap(), "wrong"],
    );
    assert!(!wrong.status.success(), "{:?}", text(&wrong));
    let java_p12 = pack.join("client-java.p12");
    let modern = client(
        &mono,
        &exe,
        &home,
        &["open", java_p12.to_str().unwrap(), &password],
    );
    println!("Mono and the AES PKCS#12: {}", text(&modern).0.trim());

    // The supplier trusts the pack's CA in its certificate store.
    let mut sync = Command::new(&mono.cert_sync);
    sync.args(["--quiet", "--user"])
        .arg(pack.join("ca.crt"))
        .env("HOME", &home);
    succeeded("cert-sync --user ca.crt", &run_bounded(sync, LIMIT));

    let server = Served::start(dir);
    let example = pack.join("requests/PersonStatusService-GetVariablePersonStatus.xml");
    let output = client(
        &mono,
        &exe,
        &home,
        &[
            "call",
            "--base",
            &server.base,
            "--p12",
            dotnet_p12.to_str().unwrap(),
            "--password",
            &password,
            "--caller",
            &caller,
            "--cvr",
            "91234567",
            "--example",
            example.to_str().unwrap(),
        ],
    );
    let posts = check_run(
        "the WCF client",
        &output,
        &[
            "client certificate CN=Testleverandør ApS, SERIALNUMBER=UI:DK-O:G:",
            "Expect: 100-continue on POST: True",
            "JobcenterMessageService.SaveAvailabilityAssessment receipt ",
            "PersonStatusService.GetVariablePersonStatus cpr 0101701234 log ",
            "JobnetCitizenStatusService.GetBorgerstatus status Aktiv log ",
            "fault 1014 Client: Message not valid",
            "Expect: 100-continue over Tls12: HTTP/1.1 100 Continue, then HTTP/1.1 200 OK",
        ],
        &server.calls(),
        &caller,
        5,
    );
    // Mono's TLS 1.2 for every call; the answered ones under the registered supplier.
    for call in &posts {
        assert_eq!(call["tls_version"], "TLSv1.2", "{call:#}");
        if call["outcome"]["kind"] == "receipt" {
            assert_eq!(call["supplier"], SUPPLIER, "{call:#}");
            assert_eq!(call["authorization"], "allowed", "{call:#}");
        }
    }
}
