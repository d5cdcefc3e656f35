//! The history of collector config versions, kept in the same store as the
//! sources, so a restarted Steward (or another replica) knows what it rolled
//! out, when and why, what failed and why, and what to roll back to.
//!
//! Versions are content-addressed: a version is named by the SHA-256 of its
//! YAML, so regenerating the same config finds the version already recorded
//! instead of making a new one. Each version also gets a `generation`, the
//! order in which versions were first recorded; "newest" always means the
//! highest generation, never a timestamp, so clock steps cannot reorder the
//! history. At most one version is `applied`; applying another supersedes it
//! in the same transaction. Rollback asks for [`VersionStore::last_good`]:
//! the newest version that was applied and has not failed since.
//!
//! The SQL and the row mapping live here because the two backends share
//! them (sqlx's SQLite driver takes `$N` placeholders too); each backend
//! implements the trait with its own way of making writers take turns.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::StoreError;
use super::any::from_serde_name;

/// Where a version stands in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionStatus {
    /// Recorded, not (yet) applied.
    Candidate,
    /// Running now. At most one version has this status.
    Applied,
    /// Refused by validation, the rollout or the health checks, or it broke
    /// after it was applied; `failure` says why.
    Failed,
    /// Was applied successfully, then another version replaced it: a
    /// rollback target.
    Superseded,
}

impl VersionStatus {
    /// The serde name, which is also what the `status` column holds.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionStatus::Candidate => "candidate",
            VersionStatus::Applied => "applied",
            VersionStatus::Failed => "failed",
            VersionStatus::Superseded => "superseded",
        }
    }
}

/// One recorded collector config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVersion {
    /// SHA-256 of `yaml`, 64 lowercase hex digits.
    pub hash: String,
    pub yaml: String,
    /// When the version was first recorded, in Unix milliseconds.
    pub created_ms: i64,
    /// Why it was made, e.g. "3 sources changed" or "rollback to cfg-…".
    pub reason: String,
    pub status: VersionStatus,
    /// Why it failed; present exactly when `status` is `failed`.
    pub failure: Option<String>,
    /// When it was marked failed, in Unix milliseconds; present exactly when
    /// `status` is `failed`.
    pub failed_ms: Option<i64>,
    /// When it was last applied, in Unix milliseconds. Kept when the version
    /// is superseded or fails later, so the history shows it once ran.
    pub applied_ms: Option<i64>,
    /// The order of first recording: 1 for the first version, then one more
    /// for each new hash. Unique.
    pub generation: i64,
}

impl ConfigVersion {
    /// The short name people use: `cfg-` and the first 12 hex digits of the
    /// hash (what `steward-config`'s `Rendered::version` prints).
    pub fn name(&self) -> String {
        // Stored hashes are 64 hex digits (checked by `record`); a shorter
        // one planted behind the store's back is shown whole, not a panic.
        let short = self.hash.get(..SHORT_NAME_DIGITS).unwrap_or(&self.hash);
        format!("{SHORT_NAME_PREFIX}{short}")
    }
}

/// Durable history of config versions. Writes are atomic, and writers from
/// several processes (or replicas, on PostgreSQL) take turns, so generations
/// stay unique and at most one version is ever applied.
pub trait VersionStore: Send + Sync + 'static {
    /// Records `yaml` (whose SHA-256 hex is `hash`) as a new candidate with
    /// the next generation. If `hash` is already recorded, returns that
    /// version unchanged: same bytes, same version, same generation. Fails
    /// if `hash` is not 64 lowercase hex digits, or if the recorded version
    /// of `hash` has different YAML (the caller hashed something else).
    fn record(
        &self,
        hash: &str,
        yaml: &str,
        reason: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<ConfigVersion, StoreError>> + Send;

    /// Makes the version with the full hash `hash` the applied one, and the
    /// one applied before it (if another) superseded, in one transaction.
    /// Clears a previous failure. Applying the applied version again changes
    /// nothing. Returns the version as stored now.
    fn mark_applied(
        &self,
        hash: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<ConfigVersion, StoreError>> + Send;

    /// Marks the version with the full hash `hash` failed, with why. Any
    /// status can fail, the applied one included (it broke after the
    /// rollout); then no version is applied. Returns the version as stored now.
    fn mark_failed(
        &self,
        hash: &str,
        failure: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<ConfigVersion, StoreError>> + Send;

    /// The applied version, if any.
    fn applied(&self) -> impl Future<Output = Result<Option<ConfigVersion>, StoreError>> + Send;

    /// The version `name` names: a full hash, a prefix of at least 6 hex
    /// digits, or `cfg-` and a prefix (the short name `cfg-<12 hex>`); hex
    /// in either case. `None` if no version matches; an error if several do,
    /// or if `name` is none of those forms.
    fn get(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigVersion>, StoreError>> + Send;

    /// At most `limit` versions, newest (highest generation) first.
    fn history(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<ConfigVersion>, StoreError>> + Send;

    /// The newest version (by generation) that was applied successfully and
    /// has not failed since, i.e. `applied` or `superseded`, other than the
    /// one with the full hash `except`: where a rollback goes.
    fn last_good(
        &self,
        except: Option<&str>,
    ) -> impl Future<Output = Result<Option<ConfigVersion>, StoreError>> + Send;
}

// ---------------------------------------------------------------------------
// What the backends share.

const SHORT_NAME_PREFIX: &str = "cfg-";
const SHORT_NAME_DIGITS: usize = 12;
/// The shortest prefix `get` accepts: shorter ones would soon be ambiguous,
/// and a typo of a few digits should not silently pick some version.
const MIN_PREFIX_DIGITS: usize = 6;
const HASH_DIGITS: usize = 64;

macro_rules! columns {
    () => {
        "hash, yaml, created_ms, reason, status, failure, failed_ms, applied_ms, generation"
    };
}

pub(super) const GET_BY_HASH: &str =
    concat!("SELECT ", columns!(), " FROM config_versions WHERE hash = $1");

/// Run only by a writer holding the write lock, so no other writer can take
/// the same number between this read and the insert.
pub(super) const NEXT_GENERATION: &str =
    "SELECT COALESCE(MAX(generation), 0) + 1 FROM config_versions";

pub(super) const INSERT: &str = concat!(
    "INSERT INTO config_versions (",
    columns!(),
    ") VALUES ($1, $2, $3, $4, 'candidate', NULL, NULL, NULL, $5)"
);

/// First half of `mark_applied`: the applied version, unless it is the one
/// being applied, steps down. Before the second half, so the one-applied
/// index never sees two.
pub(super) const SUPERSEDE_APPLIED: &str = "UPDATE config_versions SET status = 'superseded' \
     WHERE status = 'applied' AND hash <> $1";

/// Second half of `mark_applied`. An already applied version keeps its
/// `applied_ms`, so repeating the call (a retry after a lost reply) does not
/// rewrite when it was applied.
pub(super) const SET_APPLIED: &str = concat!(
    "UPDATE config_versions SET status = 'applied', failure = NULL, failed_ms = NULL, \
         applied_ms = CASE WHEN status = 'applied' THEN applied_ms ELSE $2 END \
     WHERE hash = $1 RETURNING ",
    columns!()
);

pub(super) const SET_FAILED: &str = concat!(
    "UPDATE config_versions SET status = 'failed', failure = $2, failed_ms = $3 \
     WHERE hash = $1 RETURNING ",
    columns!()
);

pub(super) const GET_APPLIED: &str =
    concat!("SELECT ", columns!(), " FROM config_versions WHERE status = 'applied'");

/// Two rows at most: one is a match, two mean the prefix is ambiguous. `$1`
/// is a hex prefix and `%`, checked to hold no other LIKE wildcard.
pub(super) const GET_BY_PREFIX: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM config_versions WHERE hash LIKE $1 ORDER BY generation LIMIT 2"
);

pub(super) const HISTORY: &str =
    concat!("SELECT ", columns!(), " FROM config_versions ORDER BY generation DESC LIMIT $1");

/// `$1` is the hash to skip, or NULL; no hash is empty, so `''` skips none.
pub(super) const LAST_GOOD: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM config_versions WHERE status IN ('applied', 'superseded') \
       AND hash <> COALESCE($1, '') ORDER BY generation DESC LIMIT 1"
);

/// One row of `config_versions`, as both backends read it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct VersionRow {
    hash: String,
    yaml: String,
    created_ms: i64,
    reason: String,
    status: String,
    failure: Option<String>,
    failed_ms: Option<i64>,
    applied_ms: Option<i64>,
    generation: i64,
}

impl VersionRow {
    pub fn into_version(self) -> Result<ConfigVersion, StoreError> {
        let status: VersionStatus =
            from_serde_name(&self.status).map_err(|err| StoreError::CorruptVersion {
                hash: self.hash.clone(),
                reason: format!("status {:?}: {err}", self.status),
            })?;
        Ok(ConfigVersion {
            hash: self.hash,
            yaml: self.yaml,
            created_ms: self.created_ms,
            reason: self.reason,
            status,
            failure: self.failure,
            failed_ms: self.failed_ms,
            applied_ms: self.applied_ms,
            generation: self.generation,
        })
    }
}

/// `rows` (at most two, from [`GET_BY_PREFIX`]) as the answer to `get(name)`.
pub(super) fn one_match(
    name: &str,
    mut rows: Vec<VersionRow>,
) -> Result<Option<ConfigVersion>, StoreError> {
    if rows.len() > 1 {
        return Err(StoreError::AmbiguousVersion { prefix: name.to_owned() });
    }
    rows.pop().map(VersionRow::into_version).transpose()
}

/// Refuses a `hash` that is not a SHA-256 hex digest before it is stored:
/// `get` finds versions by hex prefix, and the short name assumes 12 digits.
pub(super) fn check_hash(hash: &str) -> Result<(), StoreError> {
    if hash.len() == HASH_DIGITS && hash.bytes().all(is_lower_hex) {
        return Ok(());
    }
    Err(StoreError::BadVersionName {
        name: hash.to_owned(),
        reason: format!(
            "a version is recorded under its SHA-256: {HASH_DIGITS} lowercase hex digits"
        ),
    })
}

/// The LIKE pattern for `get(name)`: the hex digits `name` gives, lowercased
/// (stored hashes are lowercase), then `%`.
pub(super) fn prefix_pattern(name: &str) -> Result<String, StoreError> {
    let digits = name.strip_prefix(SHORT_NAME_PREFIX).unwrap_or(name).to_ascii_lowercase();
    let bad = |reason: &str| StoreError::BadVersionName {
        name: name.to_owned(),
        reason: format!(
            "{reason}; a version is named by its SHA-256 hex, a prefix of it of at least \
             {MIN_PREFIX_DIGITS} digits, or {SHORT_NAME_PREFIX} and {SHORT_NAME_DIGITS} digits"
        ),
    };
    if !digits.bytes().all(is_lower_hex) {
        return Err(bad("not hex"));
    }
    if digits.len() < MIN_PREFIX_DIGITS {
        return Err(bad("too short"));
    }
    if digits.len() > HASH_DIGITS {
        return Err(bad("too long"));
    }
    Ok(format!("{digits}%"))
}

/// `record`'s answer when `hash` is already there: the version unchanged, if
/// it really holds `yaml`.
pub(super) fn recorded_again(
    existing: VersionRow,
    yaml: &str,
) -> Result<ConfigVersion, StoreError> {
    let existing = existing.into_version()?;
    if existing.yaml != yaml {
        return Err(StoreError::VersionMismatch { hash: existing.hash });
    }
    Ok(existing)
}

/// The version `record` inserted, built from what it wrote.
pub(super) fn new_candidate(
    hash: &str,
    yaml: &str,
    reason: &str,
    now_ms: i64,
    generation: i64,
) -> ConfigVersion {
    ConfigVersion {
        hash: hash.to_owned(),
        yaml: yaml.to_owned(),
        created_ms: now_ms,
        reason: reason.to_owned(),
        status: VersionStatus::Candidate,
        failure: None,
        failed_ms: None,
        applied_ms: None,
        generation,
    }
}

/// `limit` for a `LIMIT` bind: both databases take a signed 64-bit number.
pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn is_lower_hex(byte: u8) -> bool {
    matches!(byte, b'0'..=b'9' | b'a'..=b'f')
}

/// Both backends run the same SQL in the same steps; only the store type and
/// the way a writer takes the table's lock (`$begin`) differ, so one body
/// serves both.
macro_rules! impl_version_store {
    ($store:ty, $begin:ident) => {
        impl VersionStore for $store {
            async fn record(
                &self,
                hash: &str,
                yaml: &str,
                reason: &str,
                now_ms: i64,
            ) -> Result<ConfigVersion, StoreError> {
                versions::check_hash(hash)?;
                let what = |step: &str| format!("{step} of config version {hash}");
                let mut tx = self.$begin(|| what("begin of the record")).await?;
                let existing: Option<VersionRow> = sqlx::query_as(versions::GET_BY_HASH)
                    .bind(hash)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Database { what: what("lookup"), source })?;
                if let Some(existing) = existing {
                    // Nothing written: dropping `tx` just releases the lock.
                    return versions::recorded_again(existing, yaml);
                }
                let (generation,): (i64,) = sqlx::query_as(versions::NEXT_GENERATION)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Database { what: what("numbering"), source })?;
                sqlx::query(versions::INSERT)
                    .bind(hash)
                    .bind(yaml)
                    .bind(now_ms)
                    .bind(reason)
                    .bind(generation)
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Database { what: what("insert"), source })?;
                tx.commit().await.map_err(|source| StoreError::Database {
                    what: what("commit of the record"),
                    source,
                })?;
                Ok(versions::new_candidate(hash, yaml, reason, now_ms, generation))
            }

            async fn mark_applied(
                &self,
                hash: &str,
                now_ms: i64,
            ) -> Result<ConfigVersion, StoreError> {
                let what = |step: &str| format!("{step} of config version {hash} as applied");
                let mut tx = self.$begin(|| what("begin of the marking")).await?;
                sqlx::query(versions::SUPERSEDE_APPLIED)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: what("superseding before marking"),
                        source,
                    })?;
                let row: Option<VersionRow> = sqlx::query_as(versions::SET_APPLIED)
                    .bind(hash)
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Database { what: what("marking"), source })?;
                // Unknown: dropping `tx` undoes the superseding too.
                let row =
                    row.ok_or_else(|| StoreError::UnknownVersion { hash: hash.to_owned() })?;
                tx.commit().await.map_err(|source| StoreError::Database {
                    what: what("commit of the marking"),
                    source,
                })?;
                row.into_version()
            }

            async fn mark_failed(
                &self,
                hash: &str,
                failure: &str,
                now_ms: i64,
            ) -> Result<ConfigVersion, StoreError> {
                let what = |step: &str| format!("{step} of config version {hash} as failed");
                let mut tx = self.$begin(|| what("begin of the marking")).await?;
                let row: Option<VersionRow> = sqlx::query_as(versions::SET_FAILED)
                    .bind(hash)
                    .bind(failure)
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|source| StoreError::Database { what: what("marking"), source })?;
                let row =
                    row.ok_or_else(|| StoreError::UnknownVersion { hash: hash.to_owned() })?;
                tx.commit().await.map_err(|source| StoreError::Database {
                    what: what("commit of the marking"),
                    source,
                })?;
                row.into_version()
            }

            async fn applied(&self) -> Result<Option<ConfigVersion>, StoreError> {
                let row: Option<VersionRow> = sqlx::query_as(versions::GET_APPLIED)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: "read of the applied config version".into(),
                        source,
                    })?;
                row.map(VersionRow::into_version).transpose()
            }

            async fn get(&self, name: &str) -> Result<Option<ConfigVersion>, StoreError> {
                let pattern = versions::prefix_pattern(name)?;
                let rows: Vec<VersionRow> = sqlx::query_as(versions::GET_BY_PREFIX)
                    .bind(pattern)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: format!("lookup of config version {name}"),
                        source,
                    })?;
                versions::one_match(name, rows)
            }

            async fn history(&self, limit: usize) -> Result<Vec<ConfigVersion>, StoreError> {
                let rows: Vec<VersionRow> = sqlx::query_as(versions::HISTORY)
                    .bind(versions::sql_limit(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: "read of the config history".into(),
                        source,
                    })?;
                rows.into_iter().map(VersionRow::into_version).collect()
            }

            async fn last_good(
                &self,
                except: Option<&str>,
            ) -> Result<Option<ConfigVersion>, StoreError> {
                let row: Option<VersionRow> = sqlx::query_as(versions::LAST_GOOD)
                    .bind(except)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|source| StoreError::Database {
                        what: "read of the last good config version".into(),
                        source,
                    })?;
                row.map(VersionRow::into_version).transpose()
            }
        }
    };
}
pub(super) use impl_version_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_hex_prefix_patterns() {
        let hash = "0123456789abcdef".repeat(4);
        assert_eq!(prefix_pattern(&hash).expect("full hash"), format!("{hash}%"));
        assert_eq!(prefix_pattern("ABCDEF").expect("upper case"), "abcdef%");
        assert_eq!(prefix_pattern("cfg-0123456789ab").expect("short name"), "0123456789ab%");
        for bad in ["", "abcde", "cfg-abcde", "abcdeg", "abc%ef", "abc_ef", "cfg-", "-abcdef"] {
            assert!(
                matches!(prefix_pattern(bad), Err(StoreError::BadVersionName { .. })),
                "{bad:?} should be refused"
            );
        }
        assert!(prefix_pattern(&format!("{hash}0")).is_err(), "longer than a hash");
    }

    #[test]
    fn only_sha256_hex_is_recorded() {
        check_hash(&"ab".repeat(32)).expect("64 lowercase hex digits");
        for bad in ["AB".repeat(32), "ab".repeat(31), "ab".repeat(33), "zz".repeat(32)] {
            assert!(check_hash(&bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn short_name_is_cfg_and_12_digits() {
        let version = new_candidate(&"0123456789abcdef".repeat(4), "", "", 0, 1);
        assert_eq!(version.name(), "cfg-0123456789ab");
    }
}
