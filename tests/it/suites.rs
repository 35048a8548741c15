//! The suites that need tools from outside the Rust toolchain: Python (zeep, lxml,
//! openapi-spec-validator), Node (node-soap), Chromium with chromedriver, Java (a JDK with
//! Debian's JAX-WS RI), Mono (WCF) and PostgreSQL (the shared journal of several replicas). `cargo xtask test` installs them all and runs every
//! suite with `DFDG_MOCK_TEST_SUITES=required`, which makes a missing tool a failure. Under
//! plain `cargo test` a test whose tool is missing says on the terminal which suite it skipped
//! and why, and passes without running.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The command that installs every suite's tools and runs them all.
pub const RUNNER: &str = "cargo xtask test";

/// Set to `required` by the runner: a missing tool fails the test instead of skipping it.
const REQUIRED: &str = "DFDG_MOCK_TEST_SUITES";

/// The Python interpreter the runner made (`DFDG_MOCK_TEST_PYTHON`), else the runner's venv
/// next to the built binary (`target/e2e/venv`), else `python3` on the PATH.
const PYTHON: &str = "DFDG_MOCK_TEST_PYTHON";

/// A suite: what it is called and what it needs.
#[derive(Debug, Clone, Copy)]
pub enum Suite {
    Python,
    Node,
    Browser,
    Java,
    Dotnet,
    Postgres,
}

impl Suite {
    fn needs(self) -> &'static str {
        match self {
            Suite::Python => "Python 3 with the packages of tests/e2e/requirements.txt (zeep, lxml, xmlschema, suds, openapi-spec-validator) in target/e2e/venv",
            Suite::Node => "Node.js with node-soap from tests/e2e/node/package-lock.json (npm ci --prefix tests/e2e/node)",
            Suite::Browser => "Debian's chromium and chromium-driver (/usr/bin/chromium, chromedriver)",
            Suite::Java => "a JDK (javac, java, keytool) and Debian's JAX-WS RI (package jaxws: wsimport, /usr/share/java/jaxws-rt.jar)",
            Suite::Dotnet => "Mono with WCF (packages mono-devel, libmono-system-servicemodel4.0a-cil, ca-certificates-mono: mono, mcs, cert-sync)",
            Suite::Postgres => "PostgreSQL's server binaries (Debian's package postgresql: /usr/lib/postgresql/*/bin/initdb, pg_ctl, psql)",
        }
    }
}

/// `Ok(tool)` as found; otherwise, under the runner, a panic saying what is missing, and
/// under plain `cargo test` a note on the terminal and `None` (the caller returns).
pub fn require<T>(suite: Suite, found: Result<T, String>) -> Option<T> {
    let why = match found {
        Ok(tool) => return Some(tool),
        Err(why) => why,
    };
    let test = std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .unwrap_or("a test")
        .to_owned();
    if std::env::var(REQUIRED).is_ok_and(|v| v == "required") {
        panic!(
            "{test} needs {}: {why}\n(`{RUNNER}` installs it; {REQUIRED}=required makes this a failure)",
            suite.needs()
        );
    }
    // Straight to the terminal: the test harness captures print!/eprint!, not this.
    let _ = writeln!(
        std::io::stderr(),
        "note: skipped {test} ({suite:?} suite): it needs {}: {why}. `{RUNNER}` installs it and runs every suite.",
        suite.needs()
    );
    None
}

/// `name` on the PATH.
pub fn on_path(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt as _;
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| format!("{name} is not on the PATH"))
}

/// A Python interpreter that imports every one of `modules`.
pub fn python(modules: &[&str]) -> Result<PathBuf, String> {
    let venv = Path::new(env!("CARGO_BIN_EXE_dfdg-mock"))
        .ancestors()
        .nth(2)
        .map(|target| target.join("e2e/venv/bin/python"));
    let candidates: Vec<PathBuf> = match std::env::var_os(PYTHON) {
        Some(given) => vec![PathBuf::from(given)],
        None => venv
            .into_iter()
            .filter(|p| p.exists())
            .chain(on_path("python3"))
            .collect(),
    };
    let script = format!("import {}", modules.join(", "));
    let mut tried = Vec::new();
    for python in candidates {
        match Command::new(&python).args(["-c", &script]).output() {
            Ok(out) if out.status.success() => return Ok(python),
            Ok(out) => tried.push(format!(
                "{}: {}",
                python.display(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("failed")
            )),
            Err(e) => tried.push(format!("{}: {e}", python.display())),
        }
    }
    if tried.is_empty() {
        return Err("no python3 found".to_owned());
    }
    Err(tried.join("; "))
}

/// The Node.js client's folder, with node-soap installed from its lock file.
pub fn node_soap() -> Result<PathBuf, String> {
    on_path("node")?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/node");
    if !dir.join("node_modules/soap/package.json").exists() {
        return Err(format!("node-soap is not installed in {}", dir.display()));
    }
    Ok(dir)
}

/// Debian's Chromium and chromedriver.
pub fn chromium() -> Result<(), String> {
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("/usr/bin/chromium does not exist".to_owned());
    }
    on_path("chromedriver").map(|_| ())
}

/// The Java tools and the JAX-WS runtime's class path.
pub struct Java {
    /// `javac`, `java`, `keytool` and `wsimport`, as found.
    pub wsimport: PathBuf,
    pub javac: PathBuf,
    pub java: PathBuf,
    pub keytool: PathBuf,
    /// Debian's jaxws-rt.jar, whose manifest names the rest of the runtime.
    pub classpath: PathBuf,
}

pub fn java() -> Result<Java, String> {
    let classpath = PathBuf::from("/usr/share/java/jaxws-rt.jar");
    let java = Java {
        wsimport: on_path("wsimport")?,
        javac: on_path("javac")?,
        java: on_path("java")?,
        keytool: on_path("keytool")?,
        classpath,
    };
    if !java.classpath.exists() {
        return Err(format!("{} does not exist", java.classpath.display()));
    }
    Ok(java)
}

/// Mono's tools, with WCF.
pub struct Mono {
    pub mono: PathBuf,
    pub mcs: PathBuf,
    pub cert_sync: PathBuf,
}

pub fn mono() -> Result<Mono, String> {
    let mono = Mono {
        mono: on_path("mono")?,
        mcs: on_path("mcs")?,
        cert_sync: on_path("cert-sync")?,
    };
    let wcf = Path::new("/usr/lib/mono/4.5/System.ServiceModel.dll");
    if !wcf.exists() {
        return Err(format!("{} does not exist", wcf.display()));
    }
    Ok(mono)
}
