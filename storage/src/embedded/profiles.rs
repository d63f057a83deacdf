//! Profiles: a table row per subject, and every profile in memory for the scoring path.

use std::collections::BTreeMap;

use async_trait::async_trait;
use credence_scorer::Timestamp;
use duckdb::{Connection, params};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::documents::{Profiles, SubjectProfile};
use crate::embedded::duck::{Ctx, Duck, in_transaction};
use crate::error::Result;
use crate::stored::{from_json, to_json};

/// Every stored profile.
pub(super) fn load(conn: &Connection) -> Result<FxHashMap<String, SubjectProfile>> {
    let mut stmt = conn
        .prepare(
            "SELECT subject_id, display_name, birth_year, region, district, occupation, flags, \
             consent, attributes, updated_at FROM store.profiles",
        )
        .ctx("loading profiles")?;
    let mut rows = stmt.query([]).ctx("loading profiles")?;
    let mut out = FxHashMap::default();
    while let Some(row) = rows.next().ctx("loading profiles")? {
        let text = |i| -> Result<String> {
            Ok(row
                .get::<_, Option<String>>(i)
                .ctx("reading a profile")?
                .unwrap_or_default())
        };
        let flags: Vec<String> = from_json(&text(6)?, "profile flags")?;
        let consent: BTreeMap<String, bool> = from_json(&text(7)?, "profile consent")?;
        let attributes: BTreeMap<String, String> = from_json(&text(8)?, "profile attributes")?;
        let profile = SubjectProfile {
            subject_id: text(0)?,
            display_name: text(1)?,
            birth_year: row
                .get::<_, Option<i32>>(2)
                .ctx("reading a profile")?
                .unwrap_or_default(),
            region: text(3)?,
            district: text(4)?,
            occupation: text(5)?,
            flags,
            consent,
            attributes,
            updated_at: row
                .get::<_, Option<i64>>(9)
                .ctx("reading a profile")?
                .map(Timestamp::from_nanos),
        };
        out.insert(profile.subject_id.clone(), profile);
    }
    Ok(out)
}

#[async_trait]
impl Profiles for Duck {
    async fn upsert_profiles(&self, profiles: Vec<SubjectProfile>) -> Result<Vec<bool>> {
        self.write(|w| {
            // A subject named twice in one call: the last profile wins, later ones are not new.
            let created: Vec<bool> = {
                let mut seen = FxHashSet::default();
                let known = self.profiles.read();
                profiles
                    .iter()
                    .map(|p| {
                        !known.contains_key(&p.subject_id) && seen.insert(p.subject_id.as_str())
                    })
                    .collect()
            };
            let mut last: FxHashMap<&str, &SubjectProfile> = FxHashMap::default();
            for p in &profiles {
                last.insert(p.subject_id.as_str(), p);
            }
            in_transaction(&w.conn, "upserting profiles", |conn| {
                {
                    let mut app = conn
                        .appender_to_catalog_and_db("profiles_stage", "temp", "main")
                        .ctx("staging profiles")?;
                    for p in last.values() {
                        app.append_row(params![
                            p.subject_id,
                            p.display_name,
                            p.birth_year,
                            p.region,
                            p.district,
                            p.occupation,
                            to_json(&p.flags, "profile flags")?,
                            // Sorted maps: the stored text is as it always was.
                            to_json(&p.consent, "profile consent")?,
                            to_json(&p.attributes, "profile attributes")?,
                            p.updated_at.map(Timestamp::nanos),
                        ])
                        .ctx("staging profiles")?;
                    }
                    app.flush().ctx("staging profiles")?;
                }
                conn.execute_batch(
                    "DELETE FROM store.profiles USING profiles_stage \
                         WHERE store.profiles.subject_id = profiles_stage.subject_id; \
                     INSERT INTO store.profiles SELECT * FROM profiles_stage; \
                     DELETE FROM profiles_stage;",
                )
                .ctx("upserting profiles")
            })?;
            // Memory follows the commit while the writer is held, so it never runs ahead of
            // (or behind) another write's commit.
            drop(last);
            let mut memory = self.profiles.write();
            for p in profiles {
                memory.insert(p.subject_id.clone(), p);
            }
            Ok(created)
        })
    }

    async fn get_profiles(&self, subject_ids: &[String]) -> Result<Vec<Option<SubjectProfile>>> {
        let memory = self.profiles.read();
        Ok(subject_ids
            .iter()
            .map(|id| memory.get(id).cloned())
            .collect())
    }
}
