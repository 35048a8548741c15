//! `cargo xtask test`: the one command that sets up and runs dfdg-mock's whole test suite.
//!
//! It installs what the external suites need, pinned and project-local where it can be:
//! Debian packages through apt (curl, openssl, Python's venv, Node.js and npm, Chromium and
//! chromedriver, a JDK with the JAX-WS RI, Mono with WCF, PostgreSQL's server) when it runs as
//! root, a Python venv in `target/e2e/venv` from `tests/e2e/requirements.txt`, node-soap from
//! `tests/e2e/node/package-lock.json` with `npm ci`. Then it runs `cargo test --locked` with
//! `DFDG_MOCK_TEST_SUITES=required`, so a suite whose tool is missing fails instead of skipping.
//! Not root and something missing: it stops before the tests and prints the apt-get command.
//! Only the standard library, so it builds before anything is installed.

use std::env;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const USAGE: &str = "\
cargo xtask test [ARGS...]   install what the test suites need, then run them all:
                             cargo test --locked ARGS... with every external suite required
cargo xtask setup            only install (what `test` does first)

What it installs, when missing:
  apt (as root)   curl, openssl, python3-venv, nodejs + npm, chromium + chromium-driver,
                  default-jdk-headless + jaxws, mono-devel (WCF, cert-sync), postgresql
  target/e2e/venv Python packages pinned in tests/e2e/requirements.txt
  tests/e2e/node  node-soap from package-lock.json (npm ci)
Not root: it stops before the tests and prints the apt-get command to run.
";

/// Node.js version node-soap 1.13 needs (its `engines`).
const NODE_MINIMUM: (u32, u32) = (20, 19);

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("setup") => setup().map(|_| ()),
        None | Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(Failure::usage(format!("unknown command {other:?}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("xtask: {failure}");
            ExitCode::from(failure.code)
        }
    }
}

/// Why the command stopped, and its exit code.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
        }
    }

    fn usage(message: String) -> Failure {
        Failure {
            message: format!("{message}\n\n{USAGE}"),
            code: 2,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The repository: the parent of this crate.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ lives in the repository")
        .to_owned()
}

/// Cargo's target folder: `CARGO_TARGET_DIR`, else `target/`.
fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// The Python venv the suites use.
fn venv() -> PathBuf {
    target_dir().join("e2e/venv")
}

fn test(args: &[String]) -> Result<(), Failure> {
    let started = Instant::now();
    let python = setup()?;
    let set_up = started.elapsed();
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let shown: String = args.iter().map(|a| format!(" {a}")).collect();
    println!("xtask: running cargo test --locked{shown} with every external suite required");
    let tests = Instant::now();
    let mut command = Command::new(cargo);
    // What `cargo run` set for this program is not the test build's: ring's build script
    // watches CARGO_MANIFEST_DIR, so passing it on would rebuild half the tree every time.
    for (name, _) in env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref())
        {
            command.env_remove(name.as_ref());
        }
    }
    let status = command
        .args(["test", "--locked"])
        .args(args)
        .current_dir(root())
        .env("DFDG_MOCK_TEST_SUITES", "required")
        .env("DFDG_MOCK_TEST_PYTHON", &python)
        .status()
        .map_err(|e| Failure::new(format!("cannot run cargo: {e}")))?;
    let summary = format!(
        "set-up {}, tests {}, in all {}",
        minutes(set_up),
        minutes(tests.elapsed()),
        minutes(started.elapsed())
    );
    if !status.success() {
        return Err(Failure::new(format!(
            "cargo test failed ({status}); {summary}"
        )));
    }
    if args.is_empty() {
        println!("xtask: the whole suite passed, the Python, Node, Chromium, Java, .NET and PostgreSQL suites included ({summary})");
    } else {
        println!(
            "xtask: cargo test {} passed with every external suite required ({summary})",
            args.join(" ")
        );
    }
    Ok(())
}

/// Installs what is missing; returns the venv's Python.
fn setup() -> Result<PathBuf, Failure> {
    system_packages()?;
    node_is_new_enough()?;
    let python = python_packages()?;
    node_packages()?;
    Ok(python)
}

/// A tool the suites need from the system, and the Debian packages that bring it.
struct Need {
    what: &'static str,
    present: fn() -> bool,
    packages: &'static [&'static str],
}

const NEEDS: &[Need] = &[
    Need {
        what: "curl and openssl (the CLI tests run them as a user would)",
        present: || on_path("curl") && on_path("openssl"),
        packages: &["curl", "openssl", "ca-certificates"],
    },
    Need {
        what: "Python 3 with venv (the zeep, lxml and OpenAPI checks run from target/e2e/venv)",
        present: || {
            venv().join("bin/python").exists() || runs("python3", &["-m", "ensurepip", "--version"])
        },
        packages: &["python3", "python3-venv"],
    },
    Need {
        what: "Node.js and npm (node-soap, the second SOAP stack)",
        present: || on_path("node") && on_path("npm"),
        packages: &["nodejs", "npm"],
    },
    Need {
        what: "Chromium and chromedriver (the dashboard test)",
        present: || Path::new("/usr/bin/chromium").exists() && on_path("chromedriver"),
        packages: &["chromium", "chromium-driver"],
    },
    Need {
        what: "a JDK and Debian's JAX-WS RI (the Java test: wsimport, javac, keytool)",
        present: || {
            on_path("javac")
                && on_path("keytool")
                && on_path("wsimport")
                && Path::new("/usr/share/java/jaxws-rt.jar").exists()
        },
        packages: &["default-jdk-headless", "jaxws"],
    },
    Need {
        what: "Mono with WCF (the .NET test: mono, mcs, cert-sync)",
        present: || {
            on_path("mono")
                && on_path("mcs")
                && on_path("cert-sync")
                && Path::new("/usr/lib/mono/4.5/System.ServiceModel.dll").exists()
        },
        packages: &[
            "mono-devel",
            "libmono-system-servicemodel4.0a-cil",
            "ca-certificates-mono",
        ],
    },
    Need {
        what: "PostgreSQL's server (the shared-journal tests start throw-away clusters: initdb, pg_ctl)",
        present: postgres_present,
        packages: &["postgresql"],
    },
];

/// Debian's server binaries, whichever version: /usr/lib/postgresql/*/bin/initdb and pg_ctl.
fn postgres_present() -> bool {
    fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
        versions.filter_map(Result::ok).any(|version| {
            let bin = version.path().join("bin");
            bin.join("initdb").exists() && bin.join("pg_ctl").exists()
        })
    })
}

fn system_packages() -> Result<(), Failure> {
    let missing: Vec<&Need> = NEEDS.iter().filter(|need| !(need.present)()).collect();
    if missing.is_empty() {
        println!("xtask: system tools: all present (curl, openssl, python3, node, chromium, JDK + JAX-WS, Mono, PostgreSQL)");
        return Ok(());
    }
    let packages: Vec<&str> = missing
        .iter()
        .flat_map(|need| need.packages.iter().copied())
        .collect();
    let list: String = missing
        .iter()
        .map(|need| format!("  - {} [{}]\n", need.what, need.packages.join(" ")))
        .collect();
    let command = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    if !is_root() || !on_path("apt-get") {
        let how = if on_path("apt-get") {
            format!("sudo sh -c '{command}'")
        } else {
            format!(
                "this is not a Debian system (no apt-get); install the equivalent of: {}",
                packages.join(" ")
            )
        };
        return Err(Failure::new(format!(
            "the test suites need tools that are not installed:\n{list}\
             Install them, then run `cargo xtask test` again:\n  {how}"
        )));
    }
    println!(
        "xtask: installing with apt (the distribution's versions; a few minutes on a fresh machine):\n{list}  apt-get install {}",
        packages.join(" ")
    );
    let started = Instant::now();
    // apt's progress goes nowhere; its errors still reach stderr.
    run(
        Command::new("apt-get")
            .args(["update", "-qq"])
            .stdout(Stdio::null()),
        "apt-get update",
    )?;
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null()),
        "apt-get install",
    )?;
    let still: Vec<&str> = missing
        .iter()
        .filter(|need| !(need.present)())
        .map(|need| need.what)
        .collect();
    if !still.is_empty() {
        return Err(Failure::new(format!(
            "apt-get installed {} but these are still missing: {}",
            packages.join(" "),
            still.join("; ")
        )));
    }
    println!(
        "xtask: apt packages installed in {}",
        minutes(started.elapsed())
    );
    Ok(())
}

fn node_is_new_enough() -> Result<(), Failure> {
    let output = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| Failure::new(format!("cannot run node: {e}")))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < NODE_MINIMUM {
        return Err(Failure::new(format!(
            "node-soap 1.13 (tests/e2e/node) needs Node.js {}.{} or newer; `node --version` says {version:?}. \
             Debian 12's nodejs is 18: install Node.js 20 or newer (Debian 13's nodejs, or NodeSource), then run `cargo xtask test` again",
            NODE_MINIMUM.0, NODE_MINIMUM.1
        )));
    }
    Ok(())
}

/// The venv with the pinned packages; reinstalled only when requirements.txt changed.
fn python_packages() -> Result<PathBuf, Failure> {
    let venv = venv();
    let python = venv.join("bin/python");
    let requirements = root().join("tests/e2e/requirements.txt");
    let wanted = read(&requirements)?;
    let stamp = venv.join("dfdg-mock-requirements.txt");
    if python.exists() && fs::read_to_string(&stamp).is_ok_and(|done| done == wanted) {
        println!("xtask: Python packages: up to date in {}", venv.display());
        return Ok(python);
    }
    let started = Instant::now();
    if !python.exists() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        )?;
    }
    let count = wanted
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    println!(
        "xtask: installing {count} pinned Python packages (zeep, lxml, xmlschema, suds, openapi-spec-validator and what they need) into {}",
        venv.display()
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-input", "-r"])
            .arg(&requirements),
        "pip install -r tests/e2e/requirements.txt",
    )?;
    write(&stamp, &wanted)?;
    println!(
        "xtask: Python packages installed in {}",
        minutes(started.elapsed())
    );
    Ok(python)
}

/// node-soap from the lock file; `npm ci` only when the lock file changed.
fn node_packages() -> Result<(), Failure> {
    let dir = root().join("tests/e2e/node");
    let lock = read(&dir.join("package-lock.json"))?;
    let stamp = dir.join("node_modules/.dfdg-mock-package-lock.json");
    if fs::read_to_string(&stamp).is_ok_and(|done| done == lock) {
        println!(
            "xtask: node packages: up to date in {}",
            dir.join("node_modules").display()
        );
        return Ok(());
    }
    let started = Instant::now();
    println!("xtask: npm ci: node-soap and its dependencies, as package-lock.json pins them");
    run(
        Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&dir),
        "npm ci",
    )?;
    write(&stamp, &lock)?;
    println!(
        "xtask: node packages installed in {}",
        minutes(started.elapsed())
    );
    Ok(())
}

fn run(command: &mut Command, what: &str) -> Result<(), Failure> {
    let status = command
        .status()
        .map_err(|e| Failure::new(format!("cannot run {what}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::new(format!("{what} failed ({status})")))
    }
}

/// `program args` runs and exits 0.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path).any(|dir| {
        dir.join(name)
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn read(path: &Path) -> Result<String, Failure> {
    fs::read_to_string(path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))
}

fn write(path: &Path, contents: &str) -> Result<(), Failure> {
    fs::write(path, contents)
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))
}

/// `4m07s`, `12s`.
fn minutes(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    if seconds >= 60 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    }
}
