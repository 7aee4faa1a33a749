//! portcullis CLI: `serve` runs the gateway, `check` validates a config file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use portcullis::clock::SystemClock;
use portcullis::config::{self, Diagnostic, Shared};
use portcullis::gateway::Gateway;
use portcullis::server::Server;

/// mimalloc: per-request allocations (headers, bodies, futures) cost about half of glibc's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PORTCULLIS_COMMIT"), ")"),
    about = "An authenticating reverse-proxy gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gateway.
    Serve {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Checks a config file and prints every problem; exits non-zero if there is any.
    Check {
        /// The config file.
        file: PathBuf,
    },
    /// Prints a fresh high-entropy API key (once) and the `key_hash` to paste into `[[apps]]`.
    NewApiKey,
    /// Reads a secret from standard input and prints its argon2id hash (for `key_hash`).
    HashSecret,
    /// Manages OAuth clients through a running gateway's admin API.
    Clients(portcullis::admin_client::cli::CredentialArgs),
    /// Manages API-key apps through a running gateway's admin API.
    Apps(portcullis::admin_client::cli::CredentialArgs),
    /// Prints a fresh operator token (once) and the `[[admin.tokens]]` block to paste.
    NewAdminToken {
        /// The token's name (audit records show it).
        #[arg(long)]
        name: String,
        /// "read" or "write".
        #[arg(long, default_value = "write")]
        scope: String,
    },
    /// Prints a new OAuth client id and secret (once) and the `[[oauth.clients]]` block to paste.
    NewClient {
        /// Display name.
        #[arg(long, default_value = "new client")]
        name: String,
        /// Allowed grants, comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "client_credentials,refresh_token"
        )]
        grant_types: Vec<String>,
        /// Allowed scopes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Exact redirect URIs (authorization_code), comma-separated.
        #[arg(long, value_delimiter = ',')]
        redirect_uris: Vec<String>,
        /// A public client (no secret, PKCE always): token_endpoint_auth_method = "none".
        #[arg(long)]
        public: bool,
    },
    /// Reads a webhook secret from standard input and prints the signed headers for a body file
    /// (`curl -H @headers.txt --data-binary @BODY`).
    SignWebhook {
        /// File with the exact body bytes.
        #[arg(long)]
        body: PathBuf,
        /// Config file with the scheme; without it, the Standard Webhooks preset.
        #[arg(long, requires = "webhook")]
        config: Option<PathBuf>,
        /// The `[webhooks.inbound.NAME]` or `[webhooks.outbound.NAME]` section.
        #[arg(long, requires = "config")]
        webhook: Option<String>,
        /// Webhook id (default: a fresh msg_...).
        #[arg(long)]
        id: Option<String>,
        /// Unix timestamp (default: now).
        #[arg(long)]
        timestamp: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    portcullis::install_crypto();
    match Cli::parse().command {
        Command::Check { file } => check(&file),
        Command::Serve { config, log_format } => serve(&config, log_format),
        Command::NewApiKey => new_api_key(),
        Command::HashSecret => hash_secret(),
        Command::Clients(args) => portcullis::admin_client::cli::run(
            portcullis::admin_client::cli::Collection::Clients,
            args,
        ),
        Command::Apps(args) => portcullis::admin_client::cli::run(
            portcullis::admin_client::cli::Collection::Apps,
            args,
        ),
        Command::NewAdminToken { name, scope } => {
            println!(
                "{}",
                portcullis::admin_api::settings::new_token_block(&name, &scope)
            );
            eprintln!(
                "WARNING: the token above is shown once and will not be shown again; store it now"
            );
            ExitCode::SUCCESS
        }
        Command::SignWebhook {
            body,
            config,
            webhook,
            id,
            timestamp,
        } => sign_webhook(portcullis::webhook::cli::SignArgs {
            config,
            webhook,
            body,
            id,
            timestamp,
        }),
        Command::NewClient {
            name,
            grant_types,
            scopes,
            redirect_uris,
            public,
        } => {
            let mint = if public {
                portcullis::oauth::client::new_public_client
            } else {
                portcullis::oauth::client::new_client
            };
            let c = mint(
                &name,
                &refs(&grant_types),
                &refs(&scopes),
                &refs(&redirect_uris),
            );
            if public {
                println!(
                    "client_id:     {}   (public client: no secret)\n",
                    c.client_id
                );
            } else {
                println!(
                    "client_id:     {}\nclient_secret: {}   (shown once: store it now)\n",
                    c.client_id, c.secret
                );
            }
            println!("{}", c.config_block);
            ExitCode::SUCCESS
        }
    }
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn new_api_key() -> ExitCode {
    let (key, hash) = portcullis::auth::generate_api_key();
    println!("api key:  {key}   (shown once: give it to the client now)");
    println!("key_hash = \"{hash}\"");
    ExitCode::SUCCESS
}

fn hash_secret() -> ExitCode {
    let mut secret = String::new();
    if std::io::stdin().read_line(&mut secret).is_err()
        || secret.trim_end_matches(['\r', '\n']).is_empty()
    {
        eprintln!(
            "error: write the secret on standard input, e.g. `read -s S; echo \"$S\" | portcullis hash-secret`"
        );
        return ExitCode::FAILURE;
    }
    match portcullis::auth::hash_secret(secret.trim_end_matches(['\r', '\n'])) {
        Ok(hash) => {
            println!("key_hash = \"{hash}\"");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sign_webhook(args: portcullis::webhook::cli::SignArgs) -> ExitCode {
    use portcullis::clock::Clock;
    use std::io::Read;
    let mut secret = Vec::new();
    if std::io::stdin()
        .take(64 * 1024)
        .read_to_end(&mut secret)
        .is_err()
    {
        eprintln!("error: write the secret on standard input");
        return ExitCode::FAILURE;
    }
    let now = SystemClock::new().unix_secs();
    match portcullis::webhook::cli::sign_webhook(&args, &secret, now) {
        Ok(headers) => {
            print!("{headers}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("error: {d}");
    }
    eprintln!("{} problem(s) found", diags.len());
}

fn check(file: &std::path::Path) -> ExitCode {
    // Checking builds upstream clients, which need a runtime context.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _guard = rt.enter();
    match config::load(file, &Shared::for_check(SystemClock::shared())) {
        Ok(snap) => {
            for note in config::notes::notes(&snap) {
                println!("note: {note}");
            }
            for warning in config::notes::unrouted(&snap) {
                println!("warning: {warning}");
            }
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for warning in config::demo::published_credentials(&text) {
                println!("warning: {warning}");
            }
            println!("{}", snap.admin_api.describe());
            println!("{}: OK", file.display());
            ExitCode::SUCCESS
        }
        Err(diags) => {
            print_diagnostics(&diags);
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stdout; colour codes only when that is a terminal, never in JSON.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_ansi(false).init(),
        LogFormat::Text => builder.with_ansi(terminal).init(),
    }
}

fn serve(path: &std::path::Path, format: LogFormat) -> ExitCode {
    init_logs(format);
    let workers = match peek_workers(path) {
        Ok(w) => w,
        Err(diags) => {
            print_diagnostics(&diags);
            return ExitCode::FAILURE;
        }
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for warning in config::demo::published_credentials(&text) {
        tracing::warn!("{warning}");
    }
    // One worker: a current-thread runtime (no work-stealing machinery, like one HAProxy thread).
    let mut rt = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if workers > 1 {
        rt.worker_threads(workers);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(path))
}

/// Reads `server.workers` before the runtime exists (the full load needs one).
fn peek_workers(path: &std::path::Path) -> Result<usize, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let source = config::Source::new(path, text);
    let mut d = config::Diagnostics::new(&source);
    match config::parse(&source, &mut d) {
        Some(raw) if d.is_empty() => Ok(raw.server.workers),
        _ => Err(d.into_vec()),
    }
}

async fn run(path: &std::path::Path) -> ExitCode {
    let gw = match Gateway::load(path, Shared::new(SystemClock::shared())) {
        Ok(gw) => gw,
        Err(diags) => {
            print_diagnostics(&diags);
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = gw.check_startup().await {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(diags) = gw.load_credentials().await {
        print_diagnostics(&diags);
        return ExitCode::FAILURE;
    }
    let server = match Server::bind(gw.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {}: {e}",
                gw.snapshot().config.listen
            );
            return ExitCode::FAILURE;
        }
    };
    if let Ok(addr) = server.local_addr() {
        tracing::info!(%addr, config = %path.display(), "portcullis listening");
    }
    spawn_reload_on_sighup(gw.clone());
    if let Some(addr) = gw.snapshot().config.admin {
        let _ = portcullis::metrics::handle();
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "admin listening");
                tokio::spawn(portcullis::admin::serve(gw.clone(), l));
            }
            Err(e) => {
                eprintln!("error: cannot listen on admin address {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    server.run(shutdown_signal()).await;
    tracing::info!("portcullis stopped");
    ExitCode::SUCCESS
}

fn spawn_reload_on_sighup(gw: std::sync::Arc<Gateway>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload is unavailable");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match gw.reload().await {
                Ok(()) => tracing::info!("config reloaded"),
                Err(diags) => {
                    for d in &diags {
                        tracing::error!(problem = %d, "config reload refused; the running config stays");
                    }
                }
            }
        }
    });
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down: draining in-flight requests (a second signal exits at once)");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("second shutdown signal: exiting without waiting for the drain");
        std::process::exit(130);
    });
}
