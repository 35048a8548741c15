//! A benchmark harness (not a test) for the journal: appends calls shaped like the shipped
//! SaveAvailabilityAssessment call (the catalog's example request with a supplier's STAR
//! headers, the onboarding scenario's response, a certificate identity) from many callers
//! through the group-commit writer, then times the queries the CLI, the admin API, the
//! dashboard, onboarding and `verify` make. Prints figures.
//!
//! ```text
//! cargo run --release --example journal_bench                       # 1,000,000 calls, 1,000 callers
//! cargo run --release --example journal_bench -- --calls 100000 --callers 100
//! cargo run --release --example journal_bench -- --journal bench.sqlite --keep
//! cargo run --release --example journal_bench -- --journal bench.sqlite --queries-only
//! cargo run --release --example journal_bench -- --journal-url postgres://dfdg@127.0.0.1:5432/bench
//! ```
//!
//! Run it from the project root (it reads `wsdl/` and `scenarios/`). Without `--journal` it
//! works in a temporary folder, removed at the end. `--journal-url` measures the PostgreSQL store
//! instead (an empty database; its size is read back with `pg_total_relation_size`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dfdg_mock::config::CatalogConfig;
use dfdg_mock::journal::{
    CallQuery, CallRecord, IdentityFields, JournalReader, Location, Outcome, RejectionQuery,
    Retention, Settings,
};
use dfdg_mock::supplier::{Category, Registry, Supplier};
use dfdg_mock::verify::{Expectation, Expectations};
use dfdg_mock::wsdl::sample::Overrides;
use dfdg_mock::wsdl::Catalog;
use dfdg_mock::{onboarding, soap};
use time::OffsetDateTime;

const SERVICE: &str = "JobcenterMessageService";
const OPERATION: &str = "SaveAvailabilityAssessment";

/// Tasks appending at once (each waits for its commit, as a connection task does).
const PRODUCERS: usize = 4096;

/// One in this many calls is answered with fault 1014 instead of a receipt.
const FAULT_EVERY: u64 = 100;

struct Args {
    calls: u64,
    callers: u32,
    /// Suppliers in the registry for the onboarding status (the first this many callers).
    suppliers: Option<usize>,
    journal: Option<PathBuf>,
    /// A PostgreSQL journal instead of the file.
    journal_url: Option<String>,
    keep: bool,
    queries_only: bool,
    /// The journal's `max_calls`: appending beyond it prunes the oldest calls as it goes.
    max_calls: Option<u64>,
}

fn args() -> Args {
    let mut args = Args {
        calls: 1_000_000,
        callers: 1000,
        suppliers: None,
        journal: None,
        journal_url: None,
        keep: false,
        queries_only: false,
        max_calls: None,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || {
            given
                .next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--calls" => args.calls = value().parse().unwrap_or_else(|_| usage("--calls N")),
            "--callers" => args.callers = value().parse().unwrap_or_else(|_| usage("--callers N")),
            "--suppliers" => {
                args.suppliers = Some(value().parse().unwrap_or_else(|_| usage("--suppliers N")))
            }
            "--journal" => args.journal = Some(PathBuf::from(value())),
            "--journal-url" => args.journal_url = Some(value()),
            "--keep" => args.keep = true,
            "--queries-only" => args.queries_only = true,
            "--max-calls" => {
                args.max_calls = Some(value().parse().unwrap_or_else(|_| usage("--max-calls N")))
            }
            "-h" | "--help" => {
                println!("{ABOUT}\n\n{USAGE}\n\n{FLAGS}");
                std::process::exit(0)
            }
            other => usage(&format!("unknown flag {other}")),
        }
    }
    args
}

const USAGE: &str = "usage: journal_bench [--calls N] [--callers N] [--suppliers N] [--journal FILE | --journal-url URL] [--keep] [--queries-only] [--max-calls N]";

/// What `--help` prints before [`USAGE`].
const ABOUT: &str =
    "journal_bench: appends calls shaped like the shipped SaveAvailabilityAssessment call
through the journal's writer, then times the queries of the CLI, the admin API, the dashboard,
onboarding and `verify`. Run it from the project root (it reads wsdl/ and scenarios/).";

/// What `--help` prints after [`USAGE`].
const FLAGS: &str = "  --calls N          calls to append (default 1000000)
  --callers N        distinct client certificates they come from (default 1000)
  --suppliers N      callers registered as suppliers, for onboarding status (default: all)
  --journal FILE     the SQLite journal to write, removed at the end unless --keep
                     (default: one in a temporary folder)
  --journal-url URL  a PostgreSQL database to write instead (postgres://...; an empty one)
  --keep             keep the journal afterwards; appends to an existing FILE
  --queries-only     append nothing: time the queries on the journal given, made with the
                     same --callers
  --max-calls N      the journal's retention limit (default: none): appending to a journal
                     that holds N calls measures the writer pruning as it appends, the steady
                     state of a full journal";

fn usage(problem: &str) -> ! {
    eprintln!("journal_bench: {problem}\n{USAGE}\n(--help explains the flags)");
    std::process::exit(2)
}

/// What every call of one caller shares.
struct Caller {
    identity: std::sync::Arc<IdentityFields>,
    name: String,
    request: String,
    star_headers: serde_json::Value,
}

fn identity(n: u32) -> IdentityFields {
    let uuid = format!(
        "{:08x}-6b5e-4ae0-8473-{:012x}",
        n.wrapping_mul(2_654_435_761),
        n
    );
    let cvr = format!("9{n:07}");
    let name = format!("Leverandør {n} ApS");
    IdentityFields {
        caller_id: format!("CVR:{cvr}-UUID:{uuid}"),
        kind: "OCES3 organisation/system".to_owned(),
        cvr: Some(cvr.clone()),
        common_name: Some(name.clone()),
        subject: format!(
            "CN={name},serialNumber=UI:DK-O:G:{uuid},O={name},organizationIdentifier=NTRDK-{cvr},C=DK"
        ),
        issuer: "CN=dfdg-mock Test CA,OU=Test - dfdg-mock,O=dfdg-mock test PKI,C=DK".to_owned(),
        serial: format!("{:032x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15),
        fingerprint: format!("{:064x}", u128::from(n) * 0x2545_f491_4f6c_dd1d + 7),
        not_before: "2026-11-30T08:29:36Z".to_owned(),
        not_after: "2027-12-01T08:29:36Z".to_owned(),
    }
}

/// The request as a welcome pack writes it: the catalog's example with the caller's STAR
/// headers, indented two spaces a level.
fn callers(count: u32) -> Vec<Caller> {
    let loaded = Catalog::load(&CatalogConfig {
        dirs: vec![PathBuf::from("wsdl")],
        ..CatalogConfig::default()
    });
    let catalog = loaded.catalog;
    let endpoint = catalog
        .endpoints
        .iter()
        .find(|e| e.service == SERVICE)
        .expect("run from the project root: wsdl/JobcenterMessageService.wsdl is needed");
    let port = &endpoint.ports[0];
    let operation = port
        .operations
        .iter()
        .find(|o| o.name == OPERATION)
        .expect("the catalog has SaveAvailabilityAssessment");
    let route = catalog
        .route(
            &endpoint.path,
            port.version,
            operation.action.as_deref(),
            &operation.input_name,
        )
        .expect("routable");
    let now = OffsetDateTime::now_utc();
    (0..count)
        .map(|n| {
            let identity = identity(n);
            let name = identity.common_name.clone().unwrap_or_default();
            let overrides = Overrides::default()
                .with("RequestUserStructure/UserIdentifier", &identity.caller_id)
                .with("RequestUserStructure/UserFullName", &name)
                .with("RequestUserTypeIdentifier/CodeListItemIdentifier", "3")
                .with(
                    "RequestOrganisationStructure/OrganisationTypeIdentifier/CodeListItemIdentifier",
                    "24",
                )
                .with(
                    "RequestOrganisationStructure/OrganisationCode",
                    identity.cvr.clone().unwrap_or_default(),
                );
            let request = indent(&route.example_request_with(now, &overrides));
            let envelope = soap::parse_envelope(&request).expect("the example parses");
            let star_headers = serde_json::to_value(&envelope.star_headers).expect("JSON");
            Caller {
                identity: identity.into(),
                name,
                request,
                star_headers,
            }
        })
        .collect()
}

/// Indents element-only XML two spaces a level (the generated example has no mixed content).
fn indent(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len() * 2);
    let mut depth: usize = 0;
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        let end = rest[start..]
            .find('>')
            .map_or(rest.len(), |e| start + e + 1);
        let tag = &rest[start..end];
        let closing = tag.starts_with("</");
        let self_closing = tag.ends_with("/>") || tag.starts_with("<?");
        if closing {
            depth = depth.saturating_sub(1);
            if text.is_empty() {
                out.push('\n');
                out.push_str(&"  ".repeat(depth));
            }
        } else if !out.is_empty() {
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
        }
        out.push_str(text);
        out.push_str(tag);
        if !closing && !self_closing {
            depth += 1;
        }
        rest = &rest[end..];
        // Text content stays on the line of its element.
        if !closing && !self_closing {
            if let Some(next) = rest.find('<') {
                if rest[next..].starts_with("</") && !rest[..next].trim().is_empty() {
                    out.push_str(&rest[..next]);
                    let close_end = rest[next..].find('>').map_or(rest.len(), |e| next + e + 1);
                    out.push_str(&rest[next..close_end]);
                    depth -= 1;
                    rest = &rest[close_end..];
                }
            }
        }
    }
    out.push('\n');
    out
}

/// The onboarding scenario's answer (`scenarios/save-availability-assessment.xml`) as rendered.
fn response(template: &str, guid: &str, receipt: &str, now: OffsetDateTime) -> String {
    template
        .replace(
            "{{ envelope_namespace }}",
            "http://schemas.xmlsoap.org/soap/envelope/",
        )
        .replace("{{ namespace }}", "urn:dfdg-mock:JobcenterMessageService:2")
        .replace("{{ guid() }}", guid)
        .replace("{{ receipt() }}", receipt)
        .replace("{{ now() }}", &soap::xml_date_time(now))
}

fn call(caller: &Caller, template: &str, n: u64) -> CallRecord {
    let now = OffsetDateTime::now_utc();
    // As the scenarios' `receipt()` makes it: a version-7 UUID, time first.
    let receipt = uuid::Uuid::now_v7().to_string();
    let faulted = n % FAULT_EVERY == FAULT_EVERY - 1;
    let response_body = if faulted {
        soap::Fault::dfdg(soap::FaultParty::Caller, 1014, "the message is not valid")
            .render(soap::SoapVersion::V11)
    } else {
        response(template, &uuid::Uuid::new_v4().to_string(), &receipt, now)
    };
    CallRecord {
        time: now,
        peer: format!("127.0.0.1:{}", 40_000 + n % 20_000),
        tls_version: "TLSv1.3".to_owned(),
        cipher_suite: "TLS13_AES_256_GCM_SHA384".to_owned(),
        alpn: Some("h2".to_owned()),
        identity: Some(caller.identity.clone()),
        method: "POST".to_owned(),
        path: format!("/{SERVICE}/2/{SERVICE}.svc"),
        soap_version: Some("1.1".to_owned()),
        soap_action: Some(format!("urn:dfdg-mock:{SERVICE}:2#{OPERATION}")),
        operation: Some(OPERATION.to_owned()),
        operation_namespace: Some(format!("urn:dfdg-mock:{SERVICE}:2")),
        star_headers: Some(caller.star_headers.clone()),
        request_body: bytes::Bytes::copy_from_slice(caller.request.as_bytes()),
        request_truncated: false,
        response_body: response_body.into(),
        response_truncated: false,
        http_status: if faulted { 500 } else { 200 },
        receipts: if faulted { Vec::new() } else { vec![receipt] },
        outcome: if faulted {
            Outcome::Fault {
                code: Some(1014),
                fault_code: "Client".to_owned(),
            }
        } else {
            Outcome::Receipt
        },
        detail: faulted.then(|| "the message is not valid".to_owned()),
        latency_micros: 900 + n % 700,
        scenario_file: Some("onboarding.toml".to_owned()),
        scenario_rule: Some("save-availability-assessment".to_owned()),
        service: Some(SERVICE.to_owned()),
        service_operation: Some(OPERATION.to_owned()),
        findings: Vec::new(),
        supplier: Some(caller.name.clone()),
        authorization: Some("allowed".to_owned()),
        identity_findings: Vec::new(),
    }
}

/// What [`append`] measured.
struct Appended {
    elapsed: Duration,
    batches: u64,
    writer_cpu: Option<Duration>,
    checkpoint_cpu: Option<Duration>,
    /// Calls the writer removed to stay within `--max-calls`, and in how many steps.
    pruned_calls: u64,
    prune_steps: u64,
}

async fn append(
    location: &Location,
    callers: Arc<Vec<Caller>>,
    total: u64,
    max_calls: Option<u64>,
) -> Appended {
    let template = Arc::new(
        std::fs::read_to_string("scenarios/save-availability-assessment.xml")
            .expect("scenarios/save-availability-assessment.xml"),
    );
    let settings = Settings {
        location: location.clone(),
        retention: Retention {
            max_calls,
            ..Retention::UNBOUNDED
        },
    };
    let journal = dfdg_mock::journal::open(&settings)
        .expect("journal")
        .journal;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let (journal, callers, next, template, progress) = (
            journal.clone(),
            callers.clone(),
            next.clone(),
            template.clone(),
            progress.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let caller = &callers[(n % callers.len() as u64) as usize];
                journal
                    .record_call(call(caller, &template, n))
                    .await
                    .expect("journaled");
                let done = progress.fetch_add(1, Ordering::Relaxed) + 1;
                if done % 100_000 == 0 {
                    eprintln!(
                        "  {done} calls, {:.0}/s",
                        done as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("producer");
    }
    let elapsed = started.elapsed();
    let stats = journal.stats();
    let appended = Appended {
        elapsed,
        batches: stats.batches,
        writer_cpu: thread_cpu("journal-writer"),
        checkpoint_cpu: thread_cpu("journal-checkpoint"),
        pruned_calls: stats.pruned.iter().map(|(_, _, calls)| calls).sum(),
        prune_steps: stats.pruned.iter().map(|(_, steps, _)| steps).sum(),
    };
    journal.close().await.expect("closed");
    appended
}

/// Calls the journal holds now (appending to an existing journal, or pruning, makes it differ
/// from the calls appended).
fn kept_calls(location: &Location) -> Option<u64> {
    let reader = dfdg_mock::journal::open_reader(location).ok()?;
    JournalReader::count_calls(&reader, &CallQuery::default()).ok()
}

/// CPU time (user + system) of this process's thread named `name`, from /proc (Linux).
fn thread_cpu(name: &str) -> Option<Duration> {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let task = task.ok()?.path();
        let comm = std::fs::read_to_string(task.join("comm")).ok()?;
        // The kernel keeps the first 15 bytes of a thread's name.
        if comm.trim() != &name[..name.len().min(15)] {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).ok()?;
        // Fields after the command name in parentheses: utime is the 14th, stime the 15th.
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split(' ').collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        return Some(Duration::from_secs_f64((utime + stime) / ticks_per_second));
    }
    None
}

/// Runs `work` up to five times (fewer when slow: at most ~3 s) and prints the first (cold
/// caches) and the best time.
fn timed<T>(name: &str, mut work: impl FnMut() -> T, describe: impl Fn(&T) -> String) {
    let started = Instant::now();
    let first = work();
    let cold = started.elapsed();
    let mut best = cold;
    let repeats = (Duration::from_secs(3).as_secs_f64() / cold.as_secs_f64().max(1e-6)) as usize;
    for _ in 0..repeats.min(4) {
        let started = Instant::now();
        std::hint::black_box(work());
        best = best.min(started.elapsed());
    }
    println!(
        "{name:<52} {:>9.2} ms first {:>9.2} ms best   {}",
        cold.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e3,
        describe(&first)
    );
}

fn expectations(callers: &[Caller]) -> Expectations {
    let caller = |n: usize| Some(callers[n % callers.len()].identity.caller_id.clone());
    let mut expect = vec![
        Expectation {
            name: Some("any receipt".to_owned()),
            operation: Some(OPERATION.to_owned()),
            outcome: Some("receipt".to_owned()),
            ..Expectation::default()
        },
        Expectation {
            name: Some("identity checked".to_owned()),
            caller_id: caller(1),
            identity_check: Some(true),
            ..Expectation::default()
        },
        Expectation {
            name: Some("service".to_owned()),
            service: Some(SERVICE.to_owned()),
            since: Some("1d".to_owned()),
            ..Expectation::default()
        },
        Expectation {
            name: Some("some 1014 faults".to_owned()),
            outcome: Some("fault 1014".to_owned()),
            ..Expectation::default()
        },
        Expectation {
            name: Some("one caller, by CVR".to_owned()),
            cvr: callers[2].identity.cvr.clone(),
            operation: Some(OPERATION.to_owned()),
            ..Expectation::default()
        },
        Expectation {
            name: Some("SOAPAction and path".to_owned()),
            soap_action: Some(format!("urn:dfdg-mock:{SERVICE}:2#{OPERATION}")),
            path: Some(format!("/{SERVICE}/2/{SERVICE}.svc")),
            ..Expectation::default()
        },
        // Failing ones, with near misses to find.
        Expectation {
            name: Some("no faults at all (fails)".to_owned()),
            caller_id: caller(3),
            outcome: Some("fault".to_owned()),
            exactly: Some(0),
            ..Expectation::default()
        },
        Expectation {
            name: Some("wrong operation (fails)".to_owned()),
            caller_id: caller(4),
            operation: Some("GetVariablePersonStatus".to_owned()),
            ..Expectation::default()
        },
        Expectation {
            name: Some("a 1012 (fails)".to_owned()),
            fault_code: Some(1012),
            caller_id: caller(5),
            ..Expectation::default()
        },
        Expectation {
            name: Some("at most 10 calls (fails)".to_owned()),
            caller_id: caller(6),
            at_most: Some(10),
            ..Expectation::default()
        },
    ];
    expect.truncate(10);
    Expectations { expect }
}

fn queries(location: &Location, callers: &[Caller], suppliers: usize) {
    let store = dfdg_mock::journal::open_reader(location).expect("reader");
    let caller_id = callers[callers.len() / 2].identity.caller_id.clone();
    let cvr = callers[callers.len() / 3].identity.cvr.clone();
    let newest: Vec<i64> = store
        .calls(&CallQuery {
            limit: 1,
            ..CallQuery::default()
        })
        .expect("newest")
        .iter()
        .map(|c| c.id)
        .collect();
    let middle = newest.first().copied().unwrap_or(0) / 2;
    let count = |c: &Vec<dfdg_mock::journal::StoredCall>| format!("{} rows", c.len());
    println!("\nqueries (one reading connection, as `calls`, the admin API and `verify` use):");
    timed(
        "newest 50",
        || store.calls(&CallQuery::default()).unwrap(),
        count,
    );
    timed(
        "one caller's newest 50 (caller id)",
        || {
            store
                .calls(&CallQuery {
                    caller: Some(caller_id.clone()),
                    ..CallQuery::default()
                })
                .unwrap()
        },
        count,
    );
    timed(
        "one caller's newest 50 (CVR)",
        || {
            store
                .calls(&CallQuery {
                    caller: cvr.clone(),
                    ..CallQuery::default()
                })
                .unwrap()
        },
        count,
    );
    timed(
        "operation filter, newest 50",
        || {
            store
                .calls(&CallQuery {
                    operation: Some(OPERATION.to_owned()),
                    ..CallQuery::default()
                })
                .unwrap()
        },
        count,
    );
    timed(
        "service filter, newest 50",
        || {
            store
                .calls(&CallQuery {
                    service: Some(SERVICE.to_owned()),
                    ..CallQuery::default()
                })
                .unwrap()
        },
        count,
    );
    timed(
        "outcome `fault 1014`, newest 50",
        || {
            store
                .calls(&CallQuery {
                    outcome: Some("fault 1014".to_owned()),
                    ..CallQuery::default()
                })
                .unwrap()
        },
        count,
    );
    timed(
        "supplier filter, newest 50",
        || {
            store
                .calls(&CallQuery {
                    supplier: Some(callers[7].name.clone()),
                    ..CallQuery::default()
                })
                .unwrap()
        },
        count,
    );
    timed(
        "since 10 minutes ago, newest 50",
        || {
            store
                .calls(&CallQuery {
                    since: Some(OffsetDateTime::now_utc() - time::Duration::minutes(10)),
                    ..CallQuery::default()
                })
                .unwrap()
        },
        count,
    );
    timed(
        "cursor page of 50 in the middle of the journal",
        || {
            store
                .calls(&CallQuery {
                    before_id: Some(middle),
                    ..CallQuery::default()
                })
                .unwrap()
        },
        count,
    );
    timed(
        "one caller's page of 50 before the middle",
        || {
            store
                .calls(&CallQuery {
                    caller: Some(caller_id.clone()),
                    before_id: Some(middle),
                    ..CallQuery::default()
                })
                .unwrap()
        },
        count,
    );
    timed(
        "count: all calls",
        || count_calls(&store, &CallQuery::default()),
        |n| format!("{n} calls"),
    );
    timed(
        "count: one caller's calls",
        || {
            count_calls(
                &store,
                &CallQuery {
                    caller: Some(caller_id.clone()),
                    ..CallQuery::default()
                },
            )
        },
        |n| format!("{n} calls"),
    );
    timed(
        "GET /api/callers (onboarding::callers)",
        || onboarding::callers(&store).unwrap(),
        |c| format!("{} callers", c.len()),
    );
    let registry = Registry::of(
        callers
            .iter()
            .take(suppliers)
            .map(|c| Supplier {
                name: c.name.clone(),
                cvr: c.identity.cvr.clone().unwrap_or_default(),
                category: Category::Large,
                identities: vec![c.identity.caller_id.clone()],
                services: vec![SERVICE.to_owned()],
                revoked: Vec::new(),
                systems: Vec::new(),
            })
            .collect(),
    );
    timed(
        &format!("onboarding status, all {suppliers} suppliers"),
        || onboarding::suppliers(&store, &registry, None).unwrap(),
        |s| {
            format!(
                "{} suppliers, {} with step 1 done",
                s.len(),
                s.iter().filter(|s| s.call_received.done).count()
            )
        },
    );
    let expectations = expectations(callers);
    timed(
        "verify, 10 expectations (4 failing, near misses)",
        || dfdg_mock::verify::verify(&store, &expectations).unwrap(),
        |r| {
            format!(
                "{} passed, {} calls examined",
                r.verdicts.iter().filter(|v| v.passed).count(),
                r.calls_examined
            )
        },
    );
    timed(
        "dashboard first paint (calls 200 + callers + rejections 200)",
        || {
            let calls = store
                .calls(&CallQuery {
                    limit: 200,
                    ..CallQuery::default()
                })
                .unwrap();
            let callers = onboarding::callers(&store).unwrap();
            let rejections = store
                .rejections(&RejectionQuery {
                    limit: 200,
                    ..RejectionQuery::default()
                })
                .unwrap();
            serde_json::to_vec(&(calls, callers, rejections))
                .unwrap()
                .len()
        },
        |bytes| format!("{bytes} bytes of JSON"),
    );
}

fn count_calls(store: &impl JournalReader, query: &CallQuery) -> u64 {
    store.count_calls(query).unwrap()
}

fn size_of(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name)).map_or(0, |m| m.len())
        })
        .sum()
}

/// Bytes the journal's tables (with their indexes and TOAST) take in a PostgreSQL database.
async fn database_size(url: &str) -> u64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the bench database");
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'dfdg_mock' AND c.relkind = 'r'",
            &[],
        )
        .await
        .expect("table sizes");
    row.get::<_, i64>(0).max(0) as u64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let folder = tempfile::tempdir().expect("temporary folder");
    let path = args
        .journal
        .clone()
        .unwrap_or_else(|| folder.path().join("bench.sqlite"));
    let location = match &args.journal_url {
        Some(url) => Location::Database(Arc::new(
            url.parse()
                .unwrap_or_else(|problem: String| usage(&problem)),
        )),
        None => Location::File(path.clone()),
    };
    let callers = Arc::new(callers(args.callers));
    let sample = call(&callers[0], "", 0);
    println!(
        "journal bench: {} calls from {} callers into {location}\n  one call: request {} B, response ~{} B, identity, STAR headers",
        args.calls,
        args.callers,
        sample.request_body.len(),
        584
    );
    if !args.queries_only {
        if args.journal_url.is_none() && path.exists() && !args.keep {
            usage(&format!(
                "{} exists: remove it or pass --queries-only",
                path.display()
            ));
        }
        let Appended {
            elapsed,
            batches,
            writer_cpu,
            checkpoint_cpu,
            pruned_calls,
            prune_steps,
        } = append(&location, callers.clone(), args.calls, args.max_calls).await;
        let bytes = match &args.journal_url {
            Some(url) => database_size(url).await,
            None => size_of(&path),
        };
        println!(
            "append: {} calls in {:.2} s = {:.0} calls/s through the writer ({} transactions, {:.0} calls each)",
            args.calls,
            elapsed.as_secs_f64(),
            args.calls as f64 / elapsed.as_secs_f64(),
            batches,
            args.calls as f64 / batches.max(1) as f64
        );
        if let Some(cpu) = writer_cpu {
            println!(
                "writer thread CPU: {:.2} s = {:.1} us per call = {:.0} calls per writer-CPU-second (the rate the writer sustains given a core)",
                cpu.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / args.calls.max(1) as f64,
                args.calls as f64 / cpu.as_secs_f64().max(1e-9)
            );
        }
        if let Some(cpu) = checkpoint_cpu {
            println!(
                "checkpoint thread CPU: {:.2} s = {:.1} us per call",
                cpu.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / args.calls.max(1) as f64
            );
        }
        if prune_steps > 0 {
            println!(
                "pruned: {pruned_calls} calls in {prune_steps} steps, to stay within --max-calls"
            );
        }
        // Over the calls appended only if the journal cannot be read back, and then it says so.
        let (kept, counted) = match kept_calls(&location) {
            Some(kept) => (kept, format!("{kept} calls in the journal")),
            None => (
                args.calls,
                "over the calls appended: the journal could not be counted".to_owned(),
            ),
        };
        println!(
            "disk: {} bytes = {:.0} bytes per call ({counted})",
            bytes,
            bytes as f64 / kept.max(1) as f64
        );
    }
    let callers_for_queries = callers.clone();
    let suppliers = args.suppliers.unwrap_or(callers.len());
    tokio::task::spawn_blocking(move || queries(&location, &callers_for_queries, suppliers))
        .await
        .expect("queries");
    if args.journal.is_some() && !args.keep && !args.queries_only {
        let _ = std::fs::remove_file(&path);
    }
}
