//! Profiles: one document per subject, `_id` = the subject id.
//!
//! Consent and attributes are arrays of pairs rather than sub-documents: their keys come
//! from clients, and MongoDB field names may not hold every text (`$` prefixes, dots).

use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::ErrorKind;
use rustc_hash::FxHashSet;

use super::{MongoDocuments, int, is_duplicate, text, time_bson, time_of};
use crate::documents::{Profiles, SubjectProfile};
use crate::error::Result;

const COLLECTION: &str = "profiles";

fn to_document(p: &SubjectProfile) -> Document {
    let consent: Vec<Document> = p
        .consent
        .iter()
        .map(|(purpose, granted)| doc! { "purpose": purpose, "granted": granted })
        .collect();
    let attributes: Vec<Document> = p
        .attributes
        .iter()
        .map(|(name, value)| doc! { "name": name, "value": value })
        .collect();
    doc! {
        "_id": &p.subject_id,
        "display_name": &p.display_name,
        "birth_year": p.birth_year,
        "region": &p.region,
        "district": &p.district,
        "occupation": &p.occupation,
        "flags": &p.flags,
        "consent": consent,
        "attributes": attributes,
        "updated_at": time_bson(p.updated_at),
    }
}

fn from_document(d: &Document) -> Result<SubjectProfile> {
    let field = |key| text(d, COLLECTION, key);
    let pairs = |key: &str| -> Vec<&Document> {
        d.get_array(key)
            .map(|a| a.iter().filter_map(Bson::as_document).collect())
            .unwrap_or_default()
    };
    Ok(SubjectProfile {
        subject_id: field("_id")?,
        display_name: field("display_name")?,
        birth_year: int(d, "birth_year")
            .and_then(|y| i32::try_from(y).ok())
            .unwrap_or_default(),
        region: field("region")?,
        district: field("district")?,
        occupation: field("occupation")?,
        flags: d
            .get_array("flags")
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        consent: pairs("consent")
            .into_iter()
            .filter_map(|c| {
                Some((
                    c.get_str("purpose").ok()?.to_owned(),
                    c.get_bool("granted").ok()?,
                ))
            })
            .collect(),
        attributes: pairs("attributes")
            .into_iter()
            .filter_map(|a| {
                Some((
                    a.get_str("name").ok()?.to_owned(),
                    a.get_str("value").ok()?.to_owned(),
                ))
            })
            .collect(),
        updated_at: time_of(d, "updated_at"),
    })
}

#[async_trait]
impl Profiles for MongoDocuments {
    /// New subjects are inserted together (unordered: each one stands alone); those the
    /// insert finds already stored are then replaced in one `update` command, in call order,
    /// so the last profile of a subject named twice wins.
    async fn upsert_profiles(&self, profiles: Vec<SubjectProfile>) -> Result<Vec<bool>> {
        if profiles.is_empty() {
            return Ok(Vec::new());
        }
        let documents: Vec<Document> = profiles.iter().map(to_document).collect();
        let collection = self.collection(COLLECTION);
        let doing = "inserting profiles";
        let inserted = self
            .within(
                doing,
                collection.insert_many(documents.iter()).ordered(false),
            )
            .await?;
        // The subjects already stored are the inserts refused as duplicate keys.
        let existing: FxHashSet<usize> = match inserted {
            Ok(_) => FxHashSet::default(),
            Err(e) => match &*e.kind {
                ErrorKind::InsertMany(failure) if is_duplicate(&e) => failure
                    .write_errors
                    .iter()
                    .flatten()
                    .map(|w| w.index)
                    .collect(),
                _ => return Err(self.classify(doing, &e)),
            },
        };
        let mut replaced: Vec<usize> = existing.iter().copied().collect();
        replaced.sort_unstable();
        let statements = replaced
            .iter()
            .map(|&i| {
                doc! {
                    "q": { "_id": &profiles[i].subject_id },
                    "u": &documents[i],
                    "upsert": true,
                }
            })
            .collect();
        self.update_all(COLLECTION, statements).await?;
        Ok((0..profiles.len())
            .map(|i| !existing.contains(&i))
            .collect())
    }

    async fn get_profiles(&self, subject_ids: &[String]) -> Result<Vec<Option<SubjectProfile>>> {
        if subject_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.find_by_ids(COLLECTION, subject_ids)
            .await?
            .iter()
            .map(|d| d.as_ref().map(from_document).transpose())
            .collect()
    }
}
