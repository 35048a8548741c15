//! The real binary, as a supplier meets it, for the suites that drive other languages' SOAP
//! stacks (java.rs, dotnet.rs): `dfdg-mock` subcommands run in a temporary folder, `serve` on
//! `127.0.0.1:0` with the port read from its banner, the journal read back with
//! `dfdg-mock calls --json`, and outside programs run under a time limit.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_dfdg-mock");

/// The catalog shipped in the repository.
pub fn shipped_wsdl() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl")
}

/// Runs `dfdg-mock args` in `dir`, with none of the environment's settings.
pub fn dfdg_mock(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(BINARY)
        .args(args)
        .current_dir(dir)
        .env_remove("DFDG_MOCK_LOG")
        .env_remove("DFDG_MOCK_CERTS_DIR")
        .env_remove("DFDG_MOCK_SUPPLIERS")
        .env_remove("DFDG_MOCK_WSDL")
        .output()
        .expect("run dfdg-mock");
    assert!(
        output.status.success(),
        "dfdg-mock {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The text after `prefix` on the first line of `text` that has it.
pub fn after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.split_once(prefix).map(|(_, rest)| rest.trim()))
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"))
}

/// `dfdg-mock serve` in `dir` (certs/, journal.sqlite, suppliers.toml there), validation
/// enforce, the shipped catalog; stopped with SIGTERM on drop.
pub struct Served {
    child: Child,
    /// `https://localhost:<port>`.
    pub base: String,
    dir: PathBuf,
}

impl Served {
    pub fn start(dir: &Path) -> Served {
        let mut child = Command::new(BINARY)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--validation",
                "enforce",
                "--certs-dir",
                "certs",
                "--journal",
                "journal.sqlite",
                "--suppliers",
                "suppliers.toml",
            ])
            .arg("--wsdl")
            .arg(shipped_wsdl())
            .current_dir(dir)
            .env_remove("DFDG_MOCK_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dfdg-mock serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = String::new();
        let base = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("serve ended before listening:\n{banner}"))
                .unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep reading the banner so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Served {
            child,
            base,
            dir: dir.to_owned(),
        }
    }

    /// Every journaled call, oldest first, as `dfdg-mock calls --json` prints them.
    pub fn calls(&self) -> Vec<Value> {
        let output = dfdg_mock(
            &self.dir,
            &[
                "calls",
                "--json",
                "--journal",
                "journal.sqlite",
                "--limit",
                "500",
            ],
        );
        let mut calls: Vec<Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect();
        calls.reverse();
        calls
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Runs `command` to its end, or kills it after `limit` and fails the test; output captured.
pub fn run_bounded(mut command: Command, limit: Duration) -> Output {
    let what = format!("{command:?}");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let id = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(limit) {
        Ok(output) => output.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("{what} did not finish within {limit:?}");
        }
    }
}

/// stdout and stderr of `output`, as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts that `output` succeeded, showing what it printed otherwise.
pub fn succeeded(what: &str, output: &Output) {
    let (stdout, stderr) = text(output);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

/// What every external client run must show: each of `expected` printed; in the journal
/// `posts` POSTs, all under `caller` (certificate and `UserIdentifier`) in their service's SOAP
/// version (1.2 for Jobnet); all but one answered with a receipt, schema-valid, with no
/// identity findings; the other a DFDG fault 1014; and the receipt of SaveAvailabilityAssessment
/// the one the client printed. Returns the POSTs, oldest first.
pub fn check_run(
    client: &str,
    output: &Output,
    expected: &[&str],
    calls: &[Value],
    caller: &str,
    posts: usize,
) -> Vec<Value> {
    succeeded(client, output);
    let (stdout, stderr) = text(output);
    println!("{stdout}");
    for line in expected {
        assert!(
            stdout.contains(line),
            "{client}: missing {line:?} in:\n{stdout}\n{stderr}"
        );
    }
    let posted: Vec<Value> = calls
        .iter()
        .filter(|c| c["method"] == "POST")
        .cloned()
        .collect();
    assert_eq!(posted.len(), posts, "{calls:#?}");
    for call in &posted {
        assert_eq!(call["identity"]["caller_id"], caller, "{call:#}");
        assert_eq!(
            call["star_headers"]["request_user"]["user_identifier"], caller,
            "{call:#}"
        );
        let jobnet = call["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/JobnetCitizenStatusService/"));
        let version = if jobnet { "1.2" } else { "1.1" };
        assert_eq!(call["soap_version"], version, "{call:#}");
    }
    let (answered, refused): (Vec<&Value>, Vec<&Value>) = posted
        .iter()
        .partition(|c| c["outcome"]["kind"] == "receipt");
    assert_eq!(answered.len(), posts - 1, "{posted:#?}");
    for call in &answered {
        assert_eq!(call["findings"], serde_json::json!([]), "{call:#}");
        assert_eq!(call["identity_findings"], serde_json::json!([]), "{call:#}");
    }
    assert_eq!(refused[0]["outcome"]["kind"], "fault", "{:#}", refused[0]);
    assert_eq!(refused[0]["outcome"]["code"], 1014, "{:#}", refused[0]);
    let receipt = answered
        .iter()
        .find(|c| c["operation"] == "SaveAvailabilityAssessment")
        .expect("a SaveAvailabilityAssessment answered")["receipts"][0]
        .as_str()
        .unwrap();
    assert!(
        stdout.contains(&format!("SaveAvailabilityAssessment receipt {receipt}")),
        "the receipt {client} printed is the journaled one ({receipt}):\n{stdout}"
    );
    posted
}
