//! `reelay keys`: API keys of the data folder's store, or of a deployment's DynamoDB table
//! (`--aws-table`). A key is printed once, when made; only its hash is kept. Works while
//! `reelay serve` runs (SQLite takes turns).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use reelay_aws::{DynamoSettings, DynamoStore};
use reelay_core::clock::SystemClock;
use reelay_core::ports::{Clock, KeyStore};
use reelay_core::tenants::new_key;
use reelay_core::time::iso8601;
use reelay_local::{Db, Durability, SqliteStore};

#[derive(Args)]
pub struct KeysArgs {
    /// The DynamoDB table of a deployment (its `TableName` output) instead of the data folder,
    /// reached with the AWS CLI's configuration (`AWS_PROFILE`, `AWS_REGION`, …).
    #[arg(long)]
    aws_table: Option<String>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it (the only time it is shown).
    Create {
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// The tenant the key acts for (default: the name).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List keys (their ids, tenants and first characters; never the keys).
    List,
    /// Revoke a key by its id; calls with it fail from then on.
    Revoke { id: String },
}

pub fn open_store(data_dir: &std::path::Path) -> anyhow::Result<SqliteStore> {
    std::fs::create_dir_all(data_dir)?;
    Ok(SqliteStore::new(Db::open(
        &data_dir.join("reelay.db"),
        Durability::Process,
    )?))
}

/// Makes a key for `tenant`; returns the key itself.
pub async fn create(store: &dyn KeyStore, name: &str, tenant: &str) -> anyhow::Result<String> {
    let (key, record) = new_key(tenant, name, SystemClock.now());
    store.create_key(&record).await?;
    Ok(key)
}

pub async fn run(data_dir: &std::path::Path, args: KeysArgs) -> anyhow::Result<ExitCode> {
    let store: Box<dyn KeyStore> = match args.aws_table {
        Some(table) => {
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            Box::new(DynamoStore::new(
                &config,
                DynamoSettings {
                    table,
                    endpoint_url: None,
                    // Keys never expire by TTL; the retention applies to finished executions.
                    retention: std::time::Duration::ZERO,
                },
            ))
        }
        None => Box::new(open_store(data_dir)?),
    };
    let store = store.as_ref();
    match args.command {
        KeysCommand::Create { name, tenant } => {
            let tenant = tenant.unwrap_or_else(|| name.clone());
            let key = create(store, &name, &tenant).await?;
            eprintln!("API key for tenant `{tenant}` (shown once; store it now):");
            println!("{key}");
        }
        KeysCommand::List => {
            let keys = store.list_keys().await?;
            if keys.is_empty() {
                println!("no keys; make one with `reelay keys create --name NAME`");
            }
            for k in keys {
                let state = k
                    .revoked_at
                    .map_or("active".to_string(), |at| format!("revoked {}", iso8601(at)));
                println!(
                    "{}  {}…  tenant={}  name={}  created {}  {state}",
                    k.id,
                    k.prefix,
                    k.tenant_id,
                    k.name,
                    iso8601(k.created_at)
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if store.revoke_key(&id, SystemClock.now()).await? {
                println!("revoked {id}");
            } else {
                eprintln!("no active key {id}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
