//! Java end-to-end, as a supplier on JAX-WS works: `dfdg-mock pki client` issues the
//! certificate, keytool opens both of its PKCS#12 files with the printed password (and not with
//! another), wsimport (Debian's JAX-WS RI) generates the client from the served `?wsdl` of three
//! shipped services over mutual TLS, and tests/e2e/java/DfdgClient.java calls them with the
//! `-java.p12` file as its key store: SOAP 1.1 and 1.2, a receipt, a DFDG fault. The journal
//! shows every call under the certificate's caller id.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::served::{after, check_run, dfdg_mock, run_bounded, succeeded, text, Served};
use crate::suites::{self, Java, Suite};

/// wsimport, javac and the client each finish well within this on a loaded 2-core machine.
const LIMIT: Duration = Duration::from_secs(180);

/// The services the client calls: two SOAP 1.1 ones, Jobnet's SOAP 1.2 one.
const SERVICES: [&str; 3] = [
    "/JobcenterMessageService/2/JobcenterMessageService.svc",
    "/PersonStatusService/20/PersonStatusService.svc",
    "/JobnetCitizenStatusService/10/JobnetCitizenStatusService.svc",
];

/// JVM options for mutual TLS with `keystore` (PKCS#12) and a trust store holding the test CA.
fn tls_options(
    keystore: &Path,
    password: &str,
    truststore: &Path,
    trust_password: &str,
) -> Vec<String> {
    vec![
        format!("-Djavax.net.ssl.keyStore={}", keystore.display()),
        format!("-Djavax.net.ssl.keyStorePassword={password}"),
        "-Djavax.net.ssl.keyStoreType=PKCS12".to_owned(),
        format!("-Djavax.net.ssl.trustStore={}", truststore.display()),
        format!("-Djavax.net.ssl.trustStorePassword={trust_password}"),
        "-Djavax.net.ssl.trustStoreType=PKCS12".to_owned(),
    ]
}

/// `keytool -list` of a PKCS#12 file with `password`.
fn keytool_list(java: &Java, file: &Path, password: &str) -> std::process::Output {
    let mut keytool = Command::new(&java.keytool);
    keytool
        .args(["-list", "-storetype", "PKCS12", "-keystore"])
        .arg(file)
        .args(["-storepass", password]);
    run_bounded(keytool, LIMIT)
}

#[test]
fn a_jax_ws_client_generated_by_wsimport_from_the_served_wsdl_calls_over_mutual_tls() {
    let Some(java) = suites::require(Suite::Java, suites::java()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    dfdg_mock(dir, &["pki", "init", "--dir", "certs"]);
    let issued = dfdg_mock(
        dir,
        &[
            "pki",
            "client",
            "--dir",
            "certs",
            "--out",
            "java-client",
            "--name",
            "Fagsystem Java Test",
            "--cvr",
            "91234567",
        ],
    );
    let (issued, _) = text(&issued);
    let caller = after(&issued, "for caller id ").to_owned();
    let password = after(&issued, "PKCS#12 password (shown once): ").to_owned();
    let keystore = dir.join("certs/java-client-java.p12");

    // keytool opens both PKCS#12 files with the printed password, and neither with another.
    for file in ["certs/java-client-java.p12", "certs/java-client-dotnet.p12"] {
        let listed = keytool_list(&java, &dir.join(file), &password);
        succeeded(&format!("keytool -list {file}"), &listed);
        let (listing, _) = text(&listed);
        assert!(listing.contains("PrivateKeyEntry"), "{file}:\n{listing}");
        let wrong = keytool_list(&java, &dir.join(file), "wrong-password");
        assert!(
            !wrong.status.success(),
            "{file} opened with a wrong password"
        );
    }

    // The test CA, as a trust store.
    let truststore = dir.join("trust.p12");
    let trust_password = "trust-store";
    let mut import = Command::new(&java.keytool);
    import
        .args(["-importcert", "-noprompt", "-alias", "dfdg-mock-test-ca"])
        .arg("-file")
        .arg(dir.join("certs/ca.crt"))
        .args(["-storetype", "PKCS12", "-keystore"])
        .arg(&truststore)
        .args(["-storepass", trust_password]);
    succeeded("keytool -importcert", &run_bounded(import, LIMIT));

    let server = Served::start(dir);
    let tls = tls_options(&keystore, &password, &truststore, trust_password);

    // wsimport reads each service's WSDL, and the schemas it imports, from the server.
    let generated = dir.join("generated");
    std::fs::create_dir(&generated).unwrap();
    for path in SERVICES {
        let mut wsimport = Command::new(&java.wsimport);
        wsimport
            .env(
                "WSIMPORT_OPTS",
                format!("-Djavax.xml.accessExternalSchema=all {}", tls.join(" ")),
            )
            .args([
                "-quiet",
                "-extension",
                "-XadditionalHeaders",
                "-keep",
                "-Xnocompile",
            ])
            .arg("-s")
            .arg(&generated)
            .arg(format!("{}{path}?wsdl", server.base));
        let output = run_bounded(wsimport, LIMIT);
        succeeded(&format!("wsimport {path}?wsdl"), &output);
    }

    let classes = dir.join("classes");
    let mut sources =
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/java/DfdgClient.java")];
    let mut folders = vec![generated.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "java") {
                sources.push(path);
            }
        }
    }
    let mut javac = Command::new(&java.javac);
    javac
        .args(["-nowarn", "-encoding", "UTF-8", "-cp"])
        .arg(&java.classpath)
        .arg("-d")
        .arg(&classes)
        .args(&sources);
    succeeded("javac", &run_bounded(javac, LIMIT));

    let mut client = Command::new(&java.java);
    client
        .args(&tls)
        // The SAAJ factory by its current property name, so the JAX-WS RI does not warn.
        .arg("-Djavax.xml.soap.SAAJMetaFactory=com.sun.xml.messaging.saaj.soap.SAAJMetaFactoryImpl")
        .arg("-cp")
        .arg(format!(
            "{}:{}",
            classes.display(),
            java.classpath.display()
        ))
        .args([
            "DfdgClient",
            "--base",
            &server.base,
            "--caller",
            &caller,
            "--cvr",
            "91234567",
        ]);
    let output = run_bounded(client, LIMIT);
    check_run(
        "the JAX-WS client",
        &output,
        &[
            "JobcenterMessageService.SaveAvailabilityAssessment receipt ",
            "PersonStatusService.GetVariablePersonStatus cpr 0101701234 log ",
            "JobnetCitizenStatusService.GetBorgerstatus status Aktiv log ",
            "fault 1014 Message not valid",
        ],
        &server.calls(),
        &caller,
        4,
    );
}
