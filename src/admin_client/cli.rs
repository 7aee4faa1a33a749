//! CLI: the `clients` and `apps` subcommands (clap arguments and what each prints).
//!
//! A new secret or key is printed once, on standard output, with a warning on standard error
//! that it will not be shown again. Errors print the API's message and fix and exit non-zero.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Value, json};

use super::{AdminClient, Answer, resolve_token};

/// Where the admin API is and who is calling.
#[derive(Debug, Args)]
pub struct Connection {
    /// Base URL of the admin listener.
    #[arg(
        long,
        env = "PORTCULLIS_ADMIN_URL",
        default_value = "http://127.0.0.1:9091"
    )]
    pub admin_url: String,
    /// Operator token (or env:NAME / file:PATH).
    #[arg(long, env = "PORTCULLIS_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `portcullis clients ...` / `portcullis apps ...`.
#[derive(Debug, Args)]
pub struct CredentialArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Creates one; prints its id and its secret (once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Choose the id instead of a generated one.
        #[arg(long)]
        id: Option<String>,
        /// Scopes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Clients: grant types, comma-separated (default client_credentials).
        #[arg(long, value_delimiter = ',')]
        grant_types: Vec<String>,
        /// Clients: exact redirect URIs, comma-separated.
        #[arg(long, value_delimiter = ',')]
        redirect_uris: Vec<String>,
        /// Clients: a public client (no secret, PKCE).
        #[arg(long)]
        public: bool,
    },
    /// Lists them (config and run time), one per line.
    List {
        /// Most entries per page fetched.
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Prints one as JSON.
    Get {
        /// The id.
        id: String,
    },
    /// Replaces the secret; prints the new one (once).
    Rotate {
        /// The id.
        id: String,
        /// Seconds the old secret keeps working (default 0: it stops now).
        #[arg(long, default_value_t = 0)]
        overlap_seconds: u64,
    },
    /// Suspends it: its tokens and keys are refused at once.
    Suspend {
        /// The id.
        id: String,
    },
    /// Makes a suspended one active again.
    Activate {
        /// The id.
        id: String,
    },
    /// Deletes it: its tokens and keys are refused at once, for good.
    Delete {
        /// The id.
        id: String,
    },
}

/// Which collection a command works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// `/admin/v1/clients`
    Clients,
    /// `/admin/v1/apps`
    Apps,
}

impl Collection {
    fn path(self) -> &'static str {
        match self {
            Self::Clients => "/admin/v1/clients",
            Self::Apps => "/admin/v1/apps",
        }
    }

    fn secret_field(self) -> &'static str {
        match self {
            Self::Clients => "client_secret",
            Self::Apps => "api_key",
        }
    }
}

/// Runs one command (on its own small runtime).
pub fn run(collection: Collection, args: CredentialArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start a runtime: {e}")),
    };
    rt.block_on(async move {
        let token = match args.conn.token.as_deref().map(resolve_token) {
            Some(Ok(t)) => t,
            Some(Err(e)) => return fail(&e),
            None => String::new(),
        };
        let client = match AdminClient::new(&args.conn.admin_url, token) {
            Ok(c) => c,
            Err(e) => return fail(&e),
        };
        match action(&client, collection, args.action).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        }
    })
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn action(c: &AdminClient, col: Collection, a: Action) -> Result<(), String> {
    let base = col.path();
    match a {
        Action::Create {
            name,
            id,
            scopes,
            grant_types,
            redirect_uris,
            public,
        } => {
            let mut body = json!({"name": name, "scopes": scopes});
            let obj = body.as_object_mut().ok_or("unreachable")?;
            if let Some(id) = id {
                obj.insert("client_id".into(), Value::from(id));
            }
            if col == Collection::Clients {
                if !grant_types.is_empty() {
                    obj.insert("grant_types".into(), json!(grant_types));
                }
                obj.insert("redirect_uris".into(), json!(redirect_uris));
                if public {
                    obj.insert("type".into(), Value::from("public"));
                }
            }
            let a = expect(c.call(Method::POST, base, Some(&body)).await?, 201)?;
            println!("client_id: {}", text(&a.body["client_id"]));
            print_secret(col, &a.body);
            Ok(())
        }
        Action::List { limit } => list(c, base, limit).await,
        Action::Get { id } => {
            let a = expect(
                c.call(Method::GET, &format!("{base}/{id}"), None).await?,
                200,
            )?;
            println!(
                "{}",
                serde_json::to_string_pretty(&a.body).unwrap_or_default()
            );
            Ok(())
        }
        Action::Rotate {
            id,
            overlap_seconds,
        } => {
            let body = json!({"overlap_seconds": overlap_seconds});
            let path = format!("{base}/{id}/rotate");
            let a = expect(c.call(Method::POST, &path, Some(&body)).await?, 200)?;
            print_secret(col, &a.body);
            if let Some(until) = a.body["previous_secret_expires_at"].as_u64() {
                eprintln!("the previous secret keeps working until {until} (Unix seconds)");
            }
            Ok(())
        }
        Action::Suspend { id } => set_status(c, base, &id, "suspended").await,
        Action::Activate { id } => set_status(c, base, &id, "active").await,
        Action::Delete { id } => {
            expect(
                c.call(Method::DELETE, &format!("{base}/{id}"), None)
                    .await?,
                204,
            )?;
            println!("deleted {id}");
            Ok(())
        }
    }
}

fn print_secret(col: Collection, body: &Value) {
    match body[col.secret_field()].as_str() {
        Some(secret) => {
            println!("{}: {secret}", col.secret_field());
            eprintln!(
                "WARNING: the {} above is shown once and will not be shown again; store it now",
                col.secret_field()
            );
        }
        None => println!("(public client: no secret)"),
    }
}

async fn set_status(c: &AdminClient, base: &str, id: &str, status: &str) -> Result<(), String> {
    let body = json!({"status": status});
    let path = format!("{base}/{id}");
    expect(c.call(Method::PATCH, &path, Some(&body)).await?, 200)?;
    println!("{id}: {status}");
    Ok(())
}

/// Prints every entry, following `next_cursor` (at most 1000 pages).
async fn list(c: &AdminClient, base: &str, limit: usize) -> Result<(), String> {
    let mut path = format!("{base}?limit={limit}");
    for _ in 0..1000 {
        let a = expect(c.call(Method::GET, &path, None).await?, 200)?;
        for item in a.body["items"].as_array().into_iter().flatten() {
            let scopes: Vec<&str> = item["scopes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            println!(
                "{}\t{}\t{}\t{}\t{}",
                text(&item["client_id"]),
                text(&item["status"]),
                text(&item["source"]),
                text(&item["name"]),
                scopes.join(" ")
            );
        }
        match a.body["next_cursor"].as_str() {
            Some(cur) => path = format!("{base}?limit={limit}&cursor={cur}"),
            None => return Ok(()),
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// The answer when it has the `want`ed status, else the API's problem as an error.
fn expect(a: Answer, want: u16) -> Result<Answer, String> {
    if a.status.as_u16() == want {
        return Ok(a);
    }
    let mut msg = format!(
        "{} {}: {}",
        a.status.as_u16(),
        text(&a.body["error"]),
        text(&a.body["message"])
    );
    if let Some(field) = a.body["field"].as_str() {
        msg.push_str(&format!(
            "\n  field: {field}\n  fix: {}",
            text(&a.body["fix"])
        ));
    }
    Err(msg)
}
