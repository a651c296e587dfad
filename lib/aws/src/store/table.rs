//! The table itself: its keys, its two indexes and its TTL attribute.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use reelay_core::ports::StoreError;

use super::executions::BY_TENANT;
use super::schedule::INDEX as SCHEDULE;
use super::{unavailable, DynamoStore};

impl DynamoStore {
    /// Creates the table as `template.yaml` declares it (tests and local stacks; AWS gets it
    /// from the template).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str, kind: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .map_err(unavailable)
        };
        let key_schema = |hash: &str, range: &str| -> Result<Vec<KeySchemaElement>, StoreError> {
            Ok(vec![
                KeySchemaElement::builder()
                    .attribute_name(hash)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(unavailable)?,
                KeySchemaElement::builder()
                    .attribute_name(range)
                    .key_type(KeyType::Range)
                    .build()
                    .map_err(unavailable)?,
            ])
        };
        let index = |name: &str, hash: &str, range: &str, projection: ProjectionType| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .set_key_schema(Some(key_schema(hash, range)?))
                .projection(Projection::builder().projection_type(projection).build())
                .build()
                .map_err(unavailable)
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(vec![
                attr("pk", ScalarAttributeType::S)?,
                attr("sk", ScalarAttributeType::S)?,
                attr("tenant_pk", ScalarAttributeType::S)?,
                attr("tenant_sk", ScalarAttributeType::S)?,
                attr("sched_pk", ScalarAttributeType::S)?,
                attr("sched_at", ScalarAttributeType::N)?,
            ]))
            .set_key_schema(Some(key_schema("pk", "sk")?))
            .global_secondary_indexes(index(BY_TENANT, "tenant_pk", "tenant_sk", ProjectionType::All)?)
            .global_secondary_indexes(index(SCHEDULE, "sched_pk", "sched_at", ProjectionType::KeysOnly)?)
            .send()
            .await
            .map_err(unavailable)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()
                    .map_err(unavailable)?,
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
