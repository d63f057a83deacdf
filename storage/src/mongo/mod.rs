//! The document roles on the MongoDB protocol (feature `mongodb`): subject profiles, rules
//! and scoring configs, block and allow lists, and the audit trail, through the `mongodb`
//! driver. On the local stack the server is FerretDB over SQLite; the same code runs on
//! MongoDB.
//!
//! **Collections** (one database, [`MongoOptions::database`]):
//! - `profiles`: one document per subject, `_id` = the subject id.
//! - `rules`: one document per rule version, `_id` = `<rule id>@<version, 10 digits>`, with
//!   `rule_id`, `version` and the rule as JSON text in `body` (numbers exact to the bit,
//!   as every backend stores them). `configs`: the same per config version.
//! - `list_entries`: one document per (subject, kind), `_id` = `<kind number>|<subject id>`.
//! - `audit`: one document per entry, ordered by (`at`, `_id`).
//!
//! Every key a hot read asks for is `_id`: FerretDB's SQLite backend pushes only `_id`
//! filters down to SQL (anything else is filtered after reading the collection), and on
//! MongoDB `_id` is indexed without asking.
//!
//! **Writes that race** between nodes are settled by `_id` uniqueness: a new version is
//! inserted under its `_id`, and a writer that loses to another (duplicate key) reads the
//! latest version again and takes the next. New profiles go in with one unordered
//! `insert_many` (FerretDB inserts about 50,000 documents/s but upserts a few hundred, see
//! docs/BENCHMARKS.md); only the profiles that already existed are replaced, all in one
//! `update` command.

mod audit;
mod lists;
mod profiles;
mod rules;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use crate::Stores;
use crate::error::{Result, StorageError};

/// MongoDB's code for a duplicate key.
const DUPLICATE_KEY: i32 = 11_000;
/// Statements per `update` command (FerretDB runs each as its own transaction; MongoDB
/// takes up to 100,000).
const UPDATE_CHUNK: usize = 1_000;
/// Lookups by `_id` in flight at once (the driver's pool holds 10 connections by default;
/// FerretDB answers reads concurrently).
const LOOKUPS_IN_FLIGHT: usize = 16;
/// Attempts of a versioned insert that loses to other writers.
const VERSION_ATTEMPTS: u32 = 16;

/// Where the documents live and how long a call may take.
#[derive(Clone, Debug)]
pub struct MongoOptions {
    /// A `mongodb://` connection string.
    pub uri: String,
    /// The database holding the collections: several platforms, or test runs, share one
    /// server with databases of their own.
    pub database: String,
    /// Longest wait for one call, and for the server at open.
    pub timeout: Duration,
}

impl MongoOptions {
    /// Options with the defaults: database `credence`, 10 s per call.
    pub fn new(uri: &str) -> Self {
        Self {
            uri: uri.to_owned(),
            database: "credence".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Profiles, rules, configs, lists and audit in one MongoDB database.
pub struct MongoDocuments {
    db: Database,
    /// The server as errors name it (the connection string without credentials).
    server: String,
    timeout: Duration,
}

impl MongoDocuments {
    /// Connects, checks that the server answers within the timeout, and creates the
    /// indexes the listings use (creating an existing index is a no-op).
    pub async fn open(options: MongoOptions) -> Result<Self> {
        let server = without_credentials(&options.uri);
        let mut client_options = ClientOptions::parse(&options.uri).await.map_err(|e| {
            StorageError::Invalid(format!("{server} is not a MongoDB connection string: {e}"))
        })?;
        client_options.app_name = Some("credence".into());
        client_options.server_selection_timeout = Some(options.timeout);
        client_options.connect_timeout = Some(options.timeout);
        let client = Client::with_options(client_options)
            .map_err(|e| StorageError::Invalid(format!("MongoDB at {server}: {e}")))?;
        let documents = Self {
            db: client.database(&options.database),
            server,
            timeout: options.timeout,
        };
        documents
            .call(
                "reaching the server",
                documents.db.run_command(doc! { "ping": 1 }),
            )
            .await?;
        documents.create_indexes().await?;
        Ok(documents)
    }

    /// Serves the document roles of `stores`: profiles, rules and configs, lists, audit.
    pub fn install(self: &Arc<Self>, stores: &mut Stores) {
        stores.profiles = self.clone();
        stores.rules = self.clone();
        stores.lists = self.clone();
        stores.audit = self.clone();
    }

    async fn create_indexes(&self) -> Result<()> {
        use mongodb::IndexModel;
        for (collection, keys) in [
            ("rules", doc! { "rule_id": 1, "version": 1 }),
            ("configs", doc! { "version": 1 }),
            ("list_entries", doc! { "subject_id": 1, "kind": 1 }),
            ("audit", doc! { "at": 1, "_id": 1 }),
        ] {
            let index = IndexModel::builder().keys(keys).build();
            self.call(
                "creating an index",
                self.collection(collection).create_index(index),
            )
            .await?;
        }
        Ok(())
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// Runs one driver call within the timeout; its error names what was being done.
    async fn call<T>(
        &self,
        doing: &str,
        call: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<T> {
        self.within(doing, call)
            .await?
            .map_err(|e| self.classify(doing, &e))
    }

    /// Runs one driver call within the timeout, leaving its own error to the caller.
    async fn within<T>(
        &self,
        doing: &str,
        call: impl IntoFuture<Output = mongodb::error::Result<T>>,
    ) -> Result<mongodb::error::Result<T>> {
        tokio::time::timeout(self.timeout, call).await.map_err(|_| {
            StorageError::Unavailable(format!(
                "{doing}: MongoDB at {} did not answer within {:?}",
                self.server, self.timeout
            ))
        })
    }

    fn classify(&self, doing: &str, error: &mongodb::error::Error) -> StorageError {
        let message = format!("{doing}: MongoDB at {}: {error}", self.server);
        match *error.kind {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::Shutdown => StorageError::Unavailable(message),
            _ if is_duplicate(error) => StorageError::Conflict(message),
            _ => StorageError::Backend(message),
        }
    }

    /// The documents of a collection matching `filter`, ordered by `sort`, at most `limit`
    /// of them (0: all).
    async fn find_all(
        &self,
        collection: &str,
        filter: Document,
        sort: Document,
        limit: i64,
    ) -> Result<Vec<Document>> {
        self.call(&format!("reading {collection}"), async {
            self.collection(collection)
                .find(filter)
                .sort(sort)
                .limit(limit)
                .await?
                .try_collect()
                .await
        })
        .await
    }

    /// The documents with the given `_id`s, in order (`None` for those not stored): one
    /// `find_one` per id, [`LOOKUPS_IN_FLIGHT`] at a time. *Why not one `$in` query:*
    /// FerretDB's SQLite backend pushes only a single `_id` down to SQL, so `$in` reads and
    /// filters the whole collection (about 10 s for 500 of 50,000 profiles here, against
    /// 0.26 s this way; docs/BENCHMARKS.md).
    async fn find_by_ids(&self, collection: &str, ids: &[String]) -> Result<Vec<Option<Document>>> {
        let collection = self.collection(collection);
        // Made up front (they do nothing until polled): a closure in the stream would not be
        // general enough over its argument's lifetime for the `Send` future async-trait needs.
        let lookups: Vec<_> = ids
            .iter()
            .map(|id| self.call("reading by _id", collection.find_one(doc! { "_id": id })))
            .collect();
        futures::stream::iter(lookups)
            .buffered(LOOKUPS_IN_FLIGHT)
            .try_collect()
            .await
    }

    /// Runs `update` commands of many statements (`{q, u, upsert}` documents), in order.
    /// A statement the server refuses fails the call, naming its error.
    async fn update_all(&self, collection: &str, statements: Vec<Document>) -> Result<()> {
        for chunk in statements.chunks(UPDATE_CHUNK) {
            let command = doc! {
                "update": collection,
                "updates": chunk.to_vec(),
                "ordered": true,
            };
            let reply = self
                .call(
                    &format!("updating {collection}"),
                    self.db.run_command(command),
                )
                .await?;
            if let Ok(errors) = reply.get_array("writeErrors")
                && let Some(Bson::Document(first)) = errors.first()
            {
                return Err(StorageError::Backend(format!(
                    "updating {collection}: MongoDB at {} refused {} of {} statements, the \
                     first with: {}",
                    self.server,
                    errors.len(),
                    chunk.len(),
                    first.get_str("errmsg").unwrap_or("no message")
                )));
            }
        }
        Ok(())
    }
}

/// Whether an error is (only) duplicate keys.
fn is_duplicate(error: &mongodb::error::Error) -> bool {
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(e) => {
            e.write_concern_error.is_none()
                && e.write_errors
                    .as_ref()
                    .is_some_and(|w| w.iter().all(|w| w.code == DUPLICATE_KEY))
        }
        _ => false,
    }
}

/// A connection string as errors may show it: `user:password@` removed.
fn without_credentials(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &uri[..scheme + 3], &uri[at + 1..])
        }
        _ => uri.to_owned(),
    }
}

/// A whole number as the server returns it (Int32 or Int64 by magnitude, on FerretDB too).
fn int(document: &Document, key: &str) -> Option<i64> {
    match document.get(key)? {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        _ => None,
    }
}

/// A text field, or a clear error naming the collection and field.
fn text(document: &Document, collection: &str, key: &str) -> Result<String> {
    document.get_str(key).map(str::to_owned).map_err(|_| {
        StorageError::Backend(format!(
            "a document of {collection} has no text field {key:?}; it was written by \
             something else: remove or correct it"
        ))
    })
}

/// An optional time as stored: nanoseconds since the epoch, or null.
fn time_bson(time: Option<credence_scorer::Timestamp>) -> Bson {
    time.map_or(Bson::Null, |t| Bson::Int64(t.nanos()))
}

fn time_of(document: &Document, key: &str) -> Option<credence_scorer::Timestamp> {
    int(document, key).map(credence_scorer::Timestamp::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_an_error() {
        assert_eq!(
            without_credentials("mongodb://ops:s3cret@db.example:27017/x"),
            "mongodb://db.example:27017/x"
        );
        assert_eq!(
            without_credentials("mongodb://127.0.0.1:27017/"),
            "mongodb://127.0.0.1:27017/"
        );
    }
}
