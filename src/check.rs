//! `dfdg-mock check`: everything `serve` would load — the WSDL catalog, the scenario files, the
//! supplier registry — read the way `serve` reads it, with what loaded, notes, and every problem
//! with its file and line; plus whether the running server's latest scenario reload (from its
//! journal) was refused. The command line prints the [`Report`] and picks the exit code.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::journal::JournalReader as _;
use crate::wsdl::Catalog;

/// What `check` found, from every source it checks.
#[derive(Debug, Default)]
pub struct Report {
    /// What loaded, one line each.
    pub loaded: Vec<String>,
    /// Worth knowing, not wrong.
    pub notes: Vec<String>,
    /// Wrong: each makes `check` fail.
    pub problems: Vec<String>,
}

/// Checks everything `serve` would load from `config`: the WSDL catalog, the scenario files
/// (and the names they use against the catalog), the supplier registry, and the running
/// server's latest reload.
pub fn all(config: &Config) -> Report {
    let mut report = Report::default();
    let catalog = catalog(config, &mut report);
    if let Some(dir) = &config.scenarios {
        let known = catalog_names(&catalog);
        let known = (!catalog.is_empty()).then_some(known.as_slice());
        match scenarios(dir, known) {
            Ok(summary) => report.loaded.extend(summary.lines().map(str::to_owned)),
            Err(error) => report.problems.push(format!("{error:#}")),
        }
    }
    registry(config, &catalog, &mut report);
    last_reload(config, &mut report);
    report
}

/// Every `(service, operation)` the catalog serves: what scenario rules may name. `check`
/// reports a rule naming anything else as a problem; a running server warns about it when the
/// rules load ([`crate::scenario::Scenarios::with_known_names`]).
pub fn catalog_names(catalog: &Catalog) -> Vec<(String, String)> {
    catalog
        .endpoints
        .iter()
        .flat_map(|e| {
            e.ports
                .iter()
                .flat_map(|p| &p.operations)
                .map(|o| (e.service.clone(), o.name.clone()))
        })
        .collect()
}

/// The supplier registry: whether it parses, and whether the services it allows are served.
fn registry(config: &Config, catalog: &Catalog, report: &mut Report) {
    let path = &config.onboarding.registry;
    match crate::supplier::Registry::load(path) {
        Err(error) => report.problems.push(format!("{error:#}")),
        Ok(registry) if registry.is_open() => report.loaded.push(format!(
            "no supplier registry ({}): open mode, any trusted certificate may call everything",
            path.display()
        )),
        Ok(registry) => {
            report.loaded.push(format!(
                "supplier registry {}: {} suppliers",
                path.display(),
                registry.suppliers().len()
            ));
            if catalog.is_empty() {
                return;
            }
            for supplier in registry.suppliers() {
                for service in &supplier.services {
                    let served = catalog
                        .endpoints
                        .iter()
                        .any(|e| e.service.eq_ignore_ascii_case(service));
                    if !served {
                        report.notes.push(format!(
                            "{}: supplier '{}' may call {service}, which the catalog does not serve",
                            path.display(),
                            supplier.name
                        ));
                    }
                }
            }
        }
    }
}

/// What the running server's latest scenario reload was, from its journal, if there is one.
fn last_reload(config: &Config, report: &mut Report) {
    let location = config.journal_location();
    let Ok(store) = crate::journal::open_reader(&location) else {
        return;
    };
    let Ok(reloads) = store.reloads(1) else {
        return;
    };
    if let Some(reload) = reloads.first() {
        let record = &reload.record;
        report.notes.push(match &record.error {
            None => format!(
                "running server (journal {location}): scenario rules last loaded {} ({} rules)",
                crate::tables::short_time(record.time),
                record.rules
            ),
            Some(error) => format!(
                "running server (journal {location}): the scenario reload at {} was REFUSED, the previous {} rules stay in force:\n{error}",
                crate::tables::short_time(record.time),
                record.rules
            ),
        });
    }
}

fn catalog(config: &Config, report: &mut Report) -> Arc<Catalog> {
    let started = std::time::Instant::now();
    let loaded = Catalog::load(&config.catalog);
    let elapsed = started.elapsed();
    let catalog = &loaded.catalog;
    for endpoint in &catalog.endpoints {
        let versions: Vec<String> = endpoint
            .ports
            .iter()
            .map(|p| p.version.to_string())
            .collect();
        let operations: Vec<String> = endpoint
            .ports
            .iter()
            .flat_map(|p| &p.operations)
            .map(|o| format!("{} [{}]", o.name, o.access.label()))
            .collect();
        report.loaded.push(format!(
            "{}: {} at {} ({}, validation {}): {}",
            catalog.wsdls[endpoint.wsdl].file.display(),
            endpoint.service,
            endpoint.path,
            versions.join(", "),
            endpoint.validation.as_str(),
            operations.join(", ")
        ));
    }
    report.loaded.push(format!(
        "catalog: {} WSDL file(s), {} endpoint(s), {} operation(s), loaded in {:.1} ms",
        catalog.wsdls.len(),
        catalog.endpoints.len(),
        catalog
            .endpoints
            .iter()
            .flat_map(|e| &e.ports)
            .map(|p| p.operations.len())
            .sum::<usize>(),
        elapsed.as_secs_f64() * 1000.0
    ));
    report
        .notes
        .extend(loaded.notes.iter().map(ToString::to_string));
    report
        .problems
        .extend(loaded.problems.iter().map(ToString::to_string));
    let self_check = loaded.catalog.self_check(time::OffsetDateTime::now_utc());
    report.loaded.push(self_check.summary());
    report
        .problems
        .extend(self_check.problems.iter().map(ToString::to_string));
    Arc::new(loaded.catalog)
}

/// Validates the scenario folder: a summary per file, or every problem as an error. With the
/// catalog's `(service, operation)` pairs, unknown names are problems too (with a "did you
/// mean").
pub fn scenarios(dir: &Path, known: Option<&[(String, String)]>) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let spec = crate::scenario::Spec::load_dir(dir)
        .map_err(|error| anyhow::anyhow!("{error}"))
        .with_context(|| format!("the scenarios in {} are not valid", dir.display()))?;
    let mut report = String::new();
    match known {
        Some(known) => {
            let problems = spec.check_against(known);
            if !problems.is_empty() {
                anyhow::bail!(
                    "the scenarios in {} name unknown services or operations:\n{}",
                    dir.display(),
                    problems.join("\n")
                );
            }
        }
        None => report.push_str(
            "note: no WSDL catalog yet, so service and operation names are not checked\n",
        ),
    }
    for file in spec.files() {
        let rules: Vec<&str> = spec
            .rules()
            .iter()
            .filter(|rule| &*rule.file == file.as_str())
            .map(|rule| &*rule.name)
            .collect();
        let _ = writeln!(
            report,
            "{}: {} rules ({})",
            dir.join(file).display(),
            rules.len(),
            rules.join(", ")
        );
    }
    let _ = writeln!(
        report,
        "ok: {} rules in {} files",
        spec.rules().len(),
        spec.files().len()
    );
    Ok(report)
}
