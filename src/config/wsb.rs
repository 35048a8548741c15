//! The `[wsb]` section, its flags and environment variables: how STAR's pushes are delivered
//! (retry policy, backoff cap and time unit, timeouts, queue bound), which certificate they
//! present and whom they trust, where WSB keeps its state, and scheduled test messages.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Seconds;
use crate::wsb::{Authority, Backoff, ChangeType, RetryPolicy, Timeouts, WsbSettings};

/// How WSB runs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsbConfig {
    /// Off: no pushes, the subscription endpoint answers 503.
    pub enabled: bool,
    /// How the delivery worker retries and waits.
    pub settings: WsbSettings,
    /// STAR's sending certificate and key (PEM); default: `star.crt` / `star.key` of the test
    /// PKI, made on first start.
    pub star: Option<(PathBuf, PathBuf)>,
    /// CA certificates (PEM) trusted to issue webhook server certificates; empty: the test CA.
    pub trust: Vec<PathBuf>,
    /// A message catalog of one's own instead of the shipped `wsb/messages.toml`.
    pub catalog: Option<PathBuf>,
    /// The SQLite file of WSB's tables; default: the journal's file.
    pub store: Option<PathBuf>,
    /// Test messages fired on a timer.
    pub schedule: Vec<Scheduled>,
}

impl Default for WsbConfig {
    fn default() -> Self {
        WsbConfig {
            enabled: true,
            settings: WsbSettings::default(),
            star: None,
            trust: Vec::new(),
            catalog: None,
            store: None,
            schedule: Vec::new(),
        }
    }
}

/// One `[[wsb.schedule]]` entry: a message sent every `every`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Names it in logs and the dashboard.
    pub name: String,
    pub every: Duration,
    /// The message type: its `EntitetId` or `EntitetNavn` (checked against the catalog at
    /// start).
    pub message_type: String,
    pub recipient: Authority,
    /// A CPR number, or (when `identifier` is given) an entity identifier.
    pub cpr: Option<String>,
    pub identifier: Option<String>,
    pub change: ChangeType,
}

/// The shortest schedule interval: a schedule is a rehearsal aid, not a load generator.
pub const MIN_SCHEDULE_INTERVAL: Duration = Duration::from_millis(100);

/// Flags of `serve` for WSB; each also reads an environment variable.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "WSB (STAR's pushes to suppliers' webhooks)")]
pub struct WsbArgs {
    /// Which failed pushes are retried: all-failures (STAR's practice: 4xx, TLS and connection
    /// errors too) or server-errors (STAR's intended rule: 5xx only). [default: all-failures]
    #[arg(long, env = "DFDG_MOCK_WSB_RETRY", value_name = "POLICY")]
    pub wsb_retry: Option<RetryPolicy>,
    /// The longest wait between attempts, in backoff seconds (STAR: 3h). [default: 3h]
    #[arg(long, env = "DFDG_MOCK_WSB_BACKOFF_CAP", value_name = "DURATION")]
    pub wsb_backoff_cap: Option<Seconds>,
    /// How long one backoff second lasts: the wait after the n-th failure is min(cap, 2^n − 1)
    /// of these; 10ms rehearses a day of retries in minutes. [default: 1s]
    #[arg(long, env = "DFDG_MOCK_WSB_BACKOFF_UNIT", value_name = "DURATION")]
    pub wsb_backoff_unit: Option<Seconds>,
    /// Time limit for a webhook's TCP connect and TLS handshake. [default: 10s]
    #[arg(long, env = "DFDG_MOCK_WSB_CONNECT_TIMEOUT", value_name = "DURATION")]
    pub wsb_connect_timeout: Option<Seconds>,
    /// Time limit for a webhook's answer. [default: 30s]
    #[arg(long, env = "DFDG_MOCK_WSB_RESPONSE_TIMEOUT", value_name = "DURATION")]
    pub wsb_response_timeout: Option<Seconds>,
    /// The most undelivered pushes at once; sending beyond it is refused. [default: 10000]
    #[arg(long, env = "DFDG_MOCK_WSB_MAX_QUEUE", value_name = "N")]
    pub wsb_max_queue: Option<usize>,
    /// CA certificate (PEM) trusted to issue webhook server certificates; repeatable or
    /// comma-separated. [default: the test CA]
    #[arg(
        long,
        env = "DFDG_MOCK_WSB_TRUST",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub wsb_trust: Vec<PathBuf>,
    /// Do not push (the subscription endpoint answers 503).
    #[arg(long, env = "DFDG_MOCK_NO_WSB")]
    pub no_wsb: bool,
}

/// The `[wsb]` table of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileWsb {
    enabled: Option<bool>,
    retry: Option<RetryPolicy>,
    backoff_cap: Option<Seconds>,
    backoff_unit: Option<Seconds>,
    connect_timeout: Option<Seconds>,
    response_timeout: Option<Seconds>,
    max_queue: Option<usize>,
    max_in_flight: Option<usize>,
    star_cert: Option<PathBuf>,
    star_key: Option<PathBuf>,
    #[serde(default)]
    trust: Vec<PathBuf>,
    catalog: Option<PathBuf>,
    store: Option<PathBuf>,
    #[serde(default)]
    schedule: Vec<FileScheduled>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScheduled {
    name: String,
    every: Seconds,
    #[serde(rename = "type")]
    message_type: TypeName,
    /// `orgType/orgCode`, e.g. "8/101".
    recipient: String,
    cpr: Option<String>,
    identifier: Option<String>,
    #[serde(default = "update")]
    change: ChangeType,
}

fn update() -> ChangeType {
    ChangeType::Update
}

/// A message type as the file writes it: `90001` or `"Frist"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TypeName {
    Id(u32),
    Name(String),
}

impl WsbConfig {
    /// Flags and environment over the file over the defaults.
    pub(super) fn merge(args: &WsbArgs, file: FileWsb) -> anyhow::Result<WsbConfig> {
        let defaults = WsbSettings::default();
        let pick = |flag: Option<Seconds>, file: Option<Seconds>, default: Duration| {
            flag.or(file).map_or(default, |s| s.0)
        };
        let unit = pick(
            args.wsb_backoff_unit,
            file.backoff_unit,
            defaults.backoff.unit,
        );
        if unit.is_zero() {
            anyhow::bail!("[wsb] backoff_unit must be longer than 0 (e.g. 1s, or 10ms in tests)");
        }
        let cap = pick(
            args.wsb_backoff_cap,
            file.backoff_cap,
            Duration::from_secs(defaults.backoff.cap_seconds),
        );
        if cap.as_secs() == 0 {
            anyhow::bail!("[wsb] backoff_cap must be at least 1s (STAR's is 3h)");
        }
        let timeouts = Timeouts {
            connect: pick(
                args.wsb_connect_timeout,
                file.connect_timeout,
                defaults.timeouts.connect,
            ),
            response: pick(
                args.wsb_response_timeout,
                file.response_timeout,
                defaults.timeouts.response,
            ),
        };
        if timeouts.connect.is_zero() || timeouts.response.is_zero() {
            anyhow::bail!("[wsb] connect_timeout and response_timeout must be longer than 0");
        }
        let settings = WsbSettings {
            retry: args.wsb_retry.or(file.retry).unwrap_or(defaults.retry),
            backoff: Backoff {
                cap_seconds: cap.as_secs(),
                unit,
            },
            timeouts,
            max_queue: args
                .wsb_max_queue
                .or(file.max_queue)
                .unwrap_or(defaults.max_queue),
            max_in_flight: file.max_in_flight.unwrap_or(defaults.max_in_flight),
        };
        if settings.max_queue == 0 || settings.max_in_flight == 0 {
            anyhow::bail!("[wsb] max_queue and max_in_flight must be at least 1");
        }
        let star = match (file.star_cert, file.star_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!(
                "[wsb] star_cert and star_key go together: set both, or neither for the test PKI's star.crt"
            ),
        };
        let mut schedule = Vec::new();
        for entry in file.schedule {
            let what = || format!("[[wsb.schedule]] {:?}", entry.name);
            if entry.every.0 < MIN_SCHEDULE_INTERVAL {
                anyhow::bail!(
                    "{}: every = {:?} is shorter than {} ms",
                    what(),
                    entry.every.0,
                    MIN_SCHEDULE_INTERVAL.as_millis()
                );
            }
            let recipient: Authority = entry
                .recipient
                .parse()
                .map_err(|e| anyhow::anyhow!("{}: recipient {e}", what()))?;
            if entry.cpr.is_some() == entry.identifier.is_some() {
                anyhow::bail!(
                    "{}: give exactly one of cpr (a citizen) and identifier (an entity)",
                    what()
                );
            }
            schedule.push(Scheduled {
                name: entry.name,
                every: entry.every.0,
                message_type: match entry.message_type {
                    TypeName::Id(id) => id.to_string(),
                    TypeName::Name(name) => name,
                },
                recipient,
                cpr: entry.cpr,
                identifier: entry.identifier,
                change: entry.change,
            });
        }
        Ok(WsbConfig {
            enabled: !args.no_wsb && file.enabled.unwrap_or(true),
            settings,
            star,
            trust: if args.wsb_trust.is_empty() {
                file.trust
            } else {
                args.wsb_trust.clone()
            },
            catalog: file.catalog,
            store: file.store,
            schedule,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Config, ServeArgs};
    use super::*;

    #[test]
    fn defaults_are_stars_and_the_file_and_flags_compress_the_time() {
        let config = Config::from_toml(Path::new("x.toml"), "").unwrap();
        assert_eq!(config.wsb, WsbConfig::default());
        assert_eq!(config.wsb.settings.backoff.cap_seconds, 10_800);
        assert_eq!(config.wsb.settings.retry, RetryPolicy::AllFailures);

        let text = r#"
[wsb]
retry = "server-errors"
backoff_cap = "1m"
backoff_unit = "10ms"
connect_timeout = "2s"
response_timeout = "3s"
max_queue = 50
trust = ["webhook-ca.crt"]

[[wsb.schedule]]
name = "Frist"
every = "30s"
type = "Frist"
recipient = "8/101"
cpr = "0101901234"
"#;
        let config = Config::from_toml(Path::new("x.toml"), text).unwrap();
        let wsb = &config.wsb;
        assert_eq!(wsb.settings.retry, RetryPolicy::ServerErrors);
        assert_eq!(
            wsb.settings.backoff,
            Backoff {
                cap_seconds: 60,
                unit: Duration::from_millis(10)
            }
        );
        assert_eq!(wsb.settings.timeouts.connect, Duration::from_secs(2));
        assert_eq!(wsb.settings.max_queue, 50);
        assert_eq!(wsb.trust, [PathBuf::from("webhook-ca.crt")]);
        assert_eq!(wsb.schedule[0].change, ChangeType::Update);
        assert_eq!(wsb.schedule[0].recipient.to_string(), "8/101");

        let args = ServeArgs {
            wsb: WsbArgs {
                wsb_retry: Some(RetryPolicy::AllFailures),
                wsb_backoff_unit: Some(Seconds(Duration::from_millis(1))),
                no_wsb: true,
                ..WsbArgs::default()
            },
            ..ServeArgs::default()
        };
        let file = super::super::parse_file(Path::new("x.toml"), text).unwrap();
        let config = Config::merge(&args, file).unwrap();
        assert_eq!(config.wsb.settings.retry, RetryPolicy::AllFailures);
        assert_eq!(config.wsb.settings.backoff.unit, Duration::from_millis(1));
        assert!(!config.wsb.enabled);
    }

    #[test]
    fn bad_wsb_settings_name_the_place() {
        let error = |text: &str| {
            Config::from_toml(Path::new("x.toml"), text)
                .unwrap_err()
                .to_string()
        };
        let message = error("[wsb]\nretry = \"sometimes\"\n");
        assert!(message.starts_with("x.toml:2:9: "), "{message}");
        let message = error("[wsb]\nbackof_unit = \"1s\"\n");
        assert!(message.starts_with("x.toml:2:1: "), "{message}");
        let message = error("[wsb]\nbackoff_unit = \"0s\"\n");
        assert!(message.contains("backoff_unit"), "{message}");
        let message = error("[wsb]\nstar_cert = \"s.crt\"\n");
        assert!(message.contains("star_key"), "{message}");
        let message = error(
            "[[wsb.schedule]]\nname = \"n\"\nevery = \"1s\"\ntype = 1\nrecipient = \"jobcenter\"\ncpr = \"1\"\n",
        );
        assert!(message.contains("orgType/orgCode"), "{message}");
        let message = error(
            "[[wsb.schedule]]\nname = \"n\"\nevery = \"1ms\"\ntype = 1\nrecipient = \"8/1\"\ncpr = \"1\"\n",
        );
        assert!(message.contains("shorter than 100 ms"), "{message}");
    }
}
