//! The latest data-role audit of each experiment's splits (issue #34): what the dashboard shows.

use serde::Serialize;

use crate::{Store, StoreError};

/// One split's audit: its findings as `oodlab audit --format json` prints them.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub experiment: String,
    pub split: i64,
    pub seed: i64,
    pub run_id: String,
    pub findings: String,
    pub made_at: String,
}

impl Store {
    /// Records `experiment`'s audit of `split`, replacing the one before.
    pub async fn record_audit(&self, experiment: &str, split: i64, seed: i64, run_id: &str, findings: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audits (experiment, split, seed, run_id, findings, made_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (experiment, split) DO UPDATE SET seed = ?3, run_id = ?4, findings = ?5, made_at = ?6",
        )
        .bind(experiment)
        .bind(split)
        .bind(seed)
        .bind(run_id)
        .bind(findings)
        .bind(crate::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `experiment`'s latest audit, split by split.
    pub async fn audits(&self, experiment: &str) -> Result<Vec<AuditRow>, StoreError> {
        Ok(sqlx::query_as::<_, AuditRow>("SELECT * FROM audits WHERE experiment = ?1 ORDER BY split")
            .bind(experiment)
            .fetch_all(&self.pool)
            .await?)
    }
}
