//! `dfdg-mock wsb …`: STAR's pushes on the running server, through its admin API (`/api/wsb`):
//! send a message, list deliveries (a table or `--json`), show one with its attempts, replay,
//! list subscriptions, and the per-supplier check "receives STAR's messages" (exit 1 while it
//! does not pass, for CI).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::tables;
use crate::wsb::{Attempt, ChangeType, Delivery, NameOrNumber, SendRequest};

#[derive(Debug, Subcommand)]
pub enum WsbCommand {
    /// Push a message as STAR to every matching subscription (type and receiving authority).
    ///
    /// Prints the message id (beskedId) and its deliveries; the webhooks are called by the
    /// server's delivery worker (see `wsb deliveries`).
    Send(SendArgs),
    /// List deliveries, newest first: state, attempts, the last outcome, the next retry.
    Deliveries(DeliveriesArgs),
    /// Show one delivery and every attempt: TLS outcome, the webhook's certificate, status,
    /// latency, next retry.
    Delivery {
        /// The delivery's number.
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Send a delivered or failed delivery again (same beskedId: a duplicate, as STAR's
    /// at-least-once delivery makes them), or try a retrying one now.
    Replay {
        /// The delivery's number.
        id: i64,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List the subscriptions suppliers synced.
    Subscriptions {
        /// Only this system's (systemIdentifier).
        #[arg(long)]
        system: Option<uuid::Uuid>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The check "receives STAR's messages" per supplier: a message delivered, a duplicate
    /// handled, a retried one delivered in order. Exits 1 while a shown supplier has not
    /// passed. --run sends the test messages (and their duplicates) first.
    Check {
        /// Only this supplier (its registry name).
        #[arg(long)]
        supplier: Option<String>,
        /// Send one test message per active subscription of the supplier (needs --supplier);
        /// each is sent again once delivered.
        #[arg(long, requires = "supplier")]
        run: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// Where the running server's admin listener is.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// The admin listener of the running dfdg-mock.
    #[arg(
        long,
        env = "DFDG_MOCK_ADMIN_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub admin: String,
    /// File holding the admin bearer token (else DFDG_MOCK_ADMIN_TOKEN, if set).
    #[arg(long, env = "DFDG_MOCK_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The message type: its EntitetId (90001) or EntitetNavn (Frist); `wsb send --type x`
    /// lists them.
    #[arg(long = "type", value_name = "TYPE")]
    pub message_type: String,
    /// The receiving authority as orgType/orgCode, e.g. 8/101 (jobcenter 101), 1/42 (a-kasse 42).
    #[arg(long, value_name = "ORGTYPE/ORGCODE")]
    pub to: String,
    /// The citizen's CPR number (10 digits; 010190-1234 is fine too).
    #[arg(
        long,
        conflicts_with = "identifier",
        required_unless_present = "identifier"
    )]
    pub cpr: Option<String>,
    /// Or the identifier of the entity the message is about (e.g. a job order).
    #[arg(long)]
    pub identifier: Option<String>,
    /// What happened to the entity.
    #[arg(long, value_enum, default_value = "update")]
    pub change: Change,
    /// EksternIdentifier: the changed entity's GUID (default: all zeros).
    #[arg(long, value_name = "GUID")]
    pub entity_id: Option<uuid::Uuid>,
    /// VersionIdentifier. [default: 1]
    #[arg(long)]
    pub version: Option<u32>,
    /// The body (JSON, or @FILE), for the types that carry one (e.g. Akassemedlemskab).
    #[arg(long, value_name = "JSON")]
    pub body: Option<String>,
    /// Only to this system's subscriptions (a test message for one supplier).
    #[arg(long, value_name = "GUID")]
    pub system: Option<uuid::Uuid>,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Change {
    Create,
    Update,
    Delete,
}

#[derive(Debug, clap::Args)]
pub struct DeliveriesArgs {
    /// Only in these states, comma-separated: queued, retrying, delivered, failed, dropped.
    #[arg(long, value_name = "STATES")]
    pub state: Option<String>,
    /// Only this system's (systemIdentifier).
    #[arg(long, value_name = "GUID")]
    pub system: Option<uuid::Uuid>,
    /// Only this message's (beskedId).
    #[arg(long, value_name = "GUID")]
    pub message: Option<uuid::Uuid>,
    /// At most this many rows (1 to 1000).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Also print each delivery's attempts under it.
    #[arg(long)]
    pub attempts: bool,
    /// Print JSON (one delivery per line, with its attempts under --attempts).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Runs a `wsb` subcommand.
pub fn run(command: WsbCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match command {
            WsbCommand::Send(args) => send(&args).await,
            WsbCommand::Deliveries(args) => deliveries(&args).await,
            WsbCommand::Delivery { id, json, admin } => delivery(id, json, &admin).await,
            WsbCommand::Replay { id, admin } => replay(id, &admin).await,
            WsbCommand::Subscriptions {
                system,
                json,
                admin,
            } => subscriptions(system, json, &admin).await,
            WsbCommand::Check {
                supplier,
                run,
                json,
                admin,
            } => check(supplier.as_deref(), run, json, &admin).await,
        }
    })
}

/// One admin request; the answer's JSON, or the server's error as the error.
async fn call(
    admin: &AdminArgs,
    method: http::Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<serde_json::Value> {
    let token = super::admin_token(admin.admin_token_file.as_deref())?;
    let (status, answer) =
        super::admin_request(method, &admin.admin, path, body, token.as_ref()).await?;
    let value: serde_json::Value = serde_json::from_slice(&answer).with_context(|| {
        format!(
            "{} answered {status} without JSON: {}",
            admin.admin,
            String::from_utf8_lossy(&answer).trim()
        )
    })?;
    if status != 200 {
        let message = value["error"].as_str().unwrap_or_default();
        anyhow::bail!("{} answered {status}: {message}", admin.admin);
    }
    Ok(value)
}

async fn send(args: &SendArgs) -> anyhow::Result<()> {
    let body = match &args.body {
        None => None,
        Some(text) => {
            let text = match text.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read the body file {file}"))?,
                None => text.clone(),
            };
            Some(serde_json::from_str::<serde_json::Value>(&text).context("--body is not JSON")?)
        }
    };
    let request = SendRequest {
        message_type: Some(match args.message_type.trim().parse::<u32>() {
            Ok(id) => NameOrNumber::Number(id),
            Err(_) => NameOrNumber::Name(args.message_type.clone()),
        }),
        recipient: Some(crate::wsb::AuthorityText::Text(args.to.clone())),
        cpr: args.cpr.clone(),
        identifier: args.identifier.clone(),
        change: Some(match args.change {
            Change::Create => ChangeType::Create,
            Change::Update => ChangeType::Update,
            Change::Delete => ChangeType::Delete,
        }),
        entity_id: args.entity_id,
        version: args.version,
        body,
        origin: Some("cli".to_owned()),
        system: args.system,
        ..SendRequest::default()
    };
    let sent = call(
        &args.admin,
        http::Method::POST,
        "/api/wsb/messages",
        Some(serde_json::to_vec(&request)?),
    )
    .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&sent)?)?;
        return Ok(());
    }
    let deliveries = sent["deliveries"].as_array().cloned().unwrap_or_default();
    let skipped = sent["skipped"].as_array().cloned().unwrap_or_default();
    writeln!(
        out,
        "sent message {} ({} to {}): {} {}",
        sent["message_id"].as_str().unwrap_or("?"),
        args.message_type,
        args.to,
        deliveries.len(),
        if deliveries.len() == 1 {
            "delivery"
        } else {
            "deliveries"
        }
    )?;
    for delivery in &deliveries {
        writeln!(
            out,
            "  delivery {:<6} → {}",
            delivery["delivery"],
            delivery["url"].as_str().unwrap_or("?")
        )?;
    }
    for skip in &skipped {
        writeln!(
            out,
            "  skipped subscription {}: {}",
            skip["subscription"].as_str().unwrap_or("?"),
            skip["reason"].as_str().unwrap_or("?")
        )?;
    }
    if deliveries.is_empty() {
        writeln!(
            out,
            "no subscription of {} takes this type for {}: a supplier syncs one at {}/SyncWebhookAbonnementer",
            args.to,
            args.message_type,
            crate::app::wsb::PREFIX
        )?;
    } else {
        writeln!(out, "follow them with: dfdg-mock wsb deliveries --attempts")?;
    }
    Ok(())
}

/// The message types' names by id, for the tables.
async fn type_names(admin: &AdminArgs) -> anyhow::Result<Vec<(u32, String)>> {
    let overview = call(admin, http::Method::GET, "/api/wsb", None).await?;
    Ok(overview["types"]
        .as_array()
        .map(|types| {
            types
                .iter()
                .filter_map(|t| {
                    Some((
                        u32::try_from(t["id"].as_u64()?).ok()?,
                        t["name"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn attempts_of(admin: &AdminArgs, id: i64) -> anyhow::Result<Vec<Attempt>> {
    let answer = call(
        admin,
        http::Method::GET,
        &format!("/api/wsb/deliveries/{id}"),
        None,
    )
    .await?;
    serde_json::from_value(answer["attempts"].clone()).context("the attempts are not readable")
}

async fn deliveries(args: &DeliveriesArgs) -> anyhow::Result<()> {
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(state) = &args.state {
        query.push(format!("state={}", state.replace(' ', "")));
    }
    if let Some(system) = args.system {
        query.push(format!("system={system}"));
    }
    if let Some(message) = args.message {
        query.push(format!("message={message}"));
    }
    let answer = call(
        &args.admin,
        http::Method::GET,
        &format!("/api/wsb/deliveries?{}", query.join("&")),
        None,
    )
    .await?;
    let list: Vec<Delivery> = serde_json::from_value(answer["deliveries"].clone())
        .context("the deliveries are not readable")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for delivery in &list {
            let mut line = serde_json::to_value(delivery)?;
            if args.attempts {
                line["attempts"] =
                    serde_json::to_value(attempts_of(&args.admin, delivery.id.0).await?)?;
            }
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let names = type_names(&args.admin).await?;
    tables::wsb::deliveries_header(&mut out)?;
    for delivery in &list {
        tables::wsb::delivery_row(&mut out, delivery, &names)?;
        if args.attempts {
            let mut attempts = attempts_of(&args.admin, delivery.id.0).await?;
            attempts.reverse();
            for attempt in &attempts {
                tables::wsb::attempt_row(&mut out, attempt)?;
            }
        }
    }
    if list.is_empty() {
        writeln!(out, "(no deliveries)")?;
    }
    let queue = &answer["queue"];
    writeln!(
        out,
        "queue: {} undelivered of at most {}, {} in flight",
        queue["undelivered"], queue["capacity"], queue["in_flight"]
    )?;
    Ok(())
}

async fn delivery(id: i64, json: bool, admin: &AdminArgs) -> anyhow::Result<()> {
    let answer = call(
        admin,
        http::Method::GET,
        &format!("/api/wsb/deliveries/{id}"),
        None,
    )
    .await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
        return Ok(());
    }
    let found: Delivery = serde_json::from_value(answer["delivery"].clone())
        .context("the delivery is not readable")?;
    let mut attempts: Vec<Attempt> = serde_json::from_value(answer["attempts"].clone())
        .context("the attempts are not readable")?;
    attempts.reverse();
    tables::wsb::delivery_detail(&mut out, &found, &attempts)?;
    Ok(())
}

async fn replay(id: i64, admin: &AdminArgs) -> anyhow::Result<()> {
    let answer = call(
        admin,
        http::Method::POST,
        &format!("/api/wsb/deliveries/{id}/replay"),
        Some(b"{}".to_vec()),
    )
    .await?;
    match answer["replay"].as_str() {
        Some("queued") => println!(
            "delivery {id} replayed as delivery {} (same beskedId)",
            answer["delivery"]
        ),
        Some("retrying_now") => println!("delivery {id} is tried again now"),
        _ => println!("{answer}"),
    }
    Ok(())
}

async fn subscriptions(
    system: Option<uuid::Uuid>,
    json: bool,
    admin: &AdminArgs,
) -> anyhow::Result<()> {
    let path = match system {
        Some(system) => format!("/api/wsb/subscriptions?system={system}"),
        None => "/api/wsb/subscriptions".to_owned(),
    };
    let answer = call(admin, http::Method::GET, &path, None).await?;
    let list = answer["subscriptions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(());
    }
    tables::wsb::subscriptions(&mut out, &list)?;
    Ok(())
}

async fn check(
    supplier: Option<&str>,
    run: bool,
    json: bool,
    admin: &AdminArgs,
) -> anyhow::Result<()> {
    let encoded = supplier.map(crate::encoding::percent_encode);
    if let (true, Some(name)) = (run, &encoded) {
        let ran = call(
            admin,
            http::Method::POST,
            &format!("/api/wsb/checks/{name}/run"),
            Some(b"{}".to_vec()),
        )
        .await?;
        let sent = ran["sent"].as_array().map_or(0, Vec::len);
        eprintln!("sent {sent} test message(s); each is sent again once delivered (a duplicate)");
    }
    let path = match &encoded {
        Some(name) => format!("/api/wsb/checks?supplier={name}"),
        None => "/api/wsb/checks".to_owned(),
    };
    let answer = call(admin, http::Method::GET, &path, None).await?;
    let suppliers = answer["suppliers"].as_array().cloned().unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
    } else {
        tables::wsb::checks(&mut out, &suppliers)?;
    }
    out.flush()?;
    let failing: Vec<&str> = suppliers
        .iter()
        .filter(|s| s["receives"]["passed"] != serde_json::Value::Bool(true))
        .filter_map(|s| s["supplier"].as_str())
        .collect();
    if suppliers.is_empty() {
        anyhow::bail!(
            "no supplier has a system registered for WSB ([[supplier.system]] in the registry)"
        );
    }
    if !failing.is_empty() {
        anyhow::bail!("not yet receiving STAR's messages: {}", failing.join(", "));
    }
    Ok(())
}
