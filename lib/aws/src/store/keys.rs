//! API keys, the [`KeyStore`] port: each key twice, by hash (`APIKEY#{sha256}` / `#KEY`, for
//! authentication) and listed (`APIKEYS` / `KEY#{id}`), both written and revoked together.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

use reelay_core::domain::Millis;
use reelay_core::ports::{ApiKeyRecord, KeyStore, StoreError};

use super::item::{key, n, s, Attrs, Item};
use super::{unavailable, DynamoStore};

const KEY_SK: &str = "#KEY";
const KEYS_PK: &str = "APIKEYS";
/// What every listed key's sort key starts with.
const LISTED: &str = "KEY#";

fn by_hash_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
}

fn listed_sk(id: &str) -> String {
    format!("{LISTED}{id}")
}

fn to_item(record: &ApiKeyRecord, pk: String, sk: &str) -> Attrs {
    let mut item = key(pk, sk);
    item.insert("id".into(), s(record.id.as_str()));
    item.insert("tenant_id".into(), s(record.tenant_id.as_str()));
    item.insert("name".into(), s(record.name.as_str()));
    item.insert("hash".into(), s(record.hash.as_str()));
    item.insert("prefix".into(), s(record.prefix.as_str()));
    item.insert("created_at".into(), n(record.created_at));
    if let Some(at) = record.revoked_at {
        item.insert("revoked_at".into(), n(at));
    }
    item
}

fn from_item(attrs: &Attrs) -> Result<ApiKeyRecord, StoreError> {
    let item = Item::new(attrs);
    Ok(ApiKeyRecord {
        id: item.str("id")?.to_string(),
        tenant_id: item.str("tenant_id")?.to_string(),
        name: item.str("name")?.to_string(),
        hash: item.str("hash")?.to_string(),
        prefix: item.str("prefix")?.to_string(),
        created_at: item.i64("created_at")?,
        revoked_at: item.opt_i64("revoked_at")?,
    })
}

#[async_trait]
impl KeyStore for DynamoStore {
    async fn create_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let items = vec![
            self.new_item(to_item(record, by_hash_pk(&record.hash), KEY_SK))?,
            self.new_item(to_item(record, KEYS_PK.to_string(), &listed_sk(&record.id)))?,
        ];
        match self.transact_patiently(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::AlreadyExists(record.id.clone())),
        }
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.get(by_hash_pk(hash), KEY_SK)
            .await?
            .map(|item| from_item(&item))
            .transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let items = self.query_prefix(KEYS_PK.to_string(), LISTED).await?;
        let mut keys = items.iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    async fn revoke_key(&self, id: &str, now: Millis) -> Result<bool, StoreError> {
        let listed_sk = listed_sk(id);
        let Some(item) = self.get(KEYS_PK.to_string(), &listed_sk).await? else {
            return Ok(false);
        };
        let record = from_item(&item)?;
        let revoke = |pk: String, sk: &str| {
            Update::builder()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .update_expression("SET revoked_at = :now")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
                .expression_attribute_values(":now", n(now))
                .build()
                .map_err(unavailable)
        };
        let items = vec![
            TransactWriteItem::builder()
                .update(revoke(KEYS_PK.to_string(), &listed_sk)?)
                .build(),
            TransactWriteItem::builder()
                .update(revoke(by_hash_pk(&record.hash), KEY_SK)?)
                .build(),
        ];
        Ok(self.transact_patiently(items).await?.is_ok())
    }
}
