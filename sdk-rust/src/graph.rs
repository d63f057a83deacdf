//! `GraphService`: relations between subjects, neighbours, paths and association.

use chrono::{DateTime, Utc};
use credence_proto::v1 as pb;

use crate::client::{Retry, all, rpc};
use crate::time::timestamp_opt;
use crate::{Client, Result};

/// The kind of a relation (relations are undirected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum RelationKind {
    /// Family.
    Family,
    /// Friend.
    Friend,
    /// Colleague.
    Colleague,
    /// Neighbour.
    Neighbour,
    /// Classmate.
    Classmate,
    /// Business partner.
    BusinessPartner,
}

wire_enum!(
    RelationKind,
    pb::RelationKind,
    [
        Family,
        Friend,
        Colleague,
        Neighbour,
        Classmate,
        BusinessPartner
    ]
);

fn kinds(kinds: &[RelationKind]) -> Vec<i32> {
    kinds.iter().map(|k| k.to_proto()).collect()
}

/// A relation between two subjects. Build one with [`Relation::new`].
///
/// ```
/// use credence::{Relation, RelationKind};
/// let r = Relation::new("subject-0001", "subject-0002", RelationKind::Friend).weight(0.5);
/// assert_eq!(r.weight, 0.5);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Relation {
    /// One subject.
    pub subject_id: String,
    /// The other.
    pub other_subject_id: String,
    /// The kind.
    pub kind: RelationKind,
    /// How strong, 0 to 1 (default 1).
    #[cfg_attr(
        feature = "serde",
        serde(default = "crate::serde_support::unit_weight")
    )]
    pub weight: f64,
    /// Since when.
    pub since: Option<DateTime<Utc>>,
}

impl Relation {
    /// A relation of weight 1.
    pub fn new(
        subject_id: impl Into<String>,
        other_subject_id: impl Into<String>,
        kind: RelationKind,
    ) -> Self {
        Self {
            subject_id: subject_id.into(),
            other_subject_id: other_subject_id.into(),
            kind,
            weight: 1.0,
            since: None,
        }
    }

    /// Sets the weight.
    #[must_use]
    pub fn weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }

    /// Sets since when it holds.
    #[must_use]
    pub fn since(mut self, since: impl Into<DateTime<Utc>>) -> Self {
        self.since = Some(since.into());
        self
    }

    /// The key that names this relation (for [`Client::remove_relations`]).
    pub fn key(&self) -> RelationKey {
        RelationKey {
            subject_id: self.subject_id.clone(),
            other_subject_id: self.other_subject_id.clone(),
            kind: self.kind,
        }
    }
}

/// What names a relation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct RelationKey {
    /// One subject.
    pub subject_id: String,
    /// The other.
    pub other_subject_id: String,
    /// The kind.
    pub kind: RelationKind,
}

/// The answer to [`Client::put_relations`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RelationsResult {
    /// Relations written.
    pub upserted: u32,
    /// Refused ones: (index in the request, reason).
    pub rejected: Vec<(u32, String)>,
}

/// How [`Client::get_neighbors`] walks the graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct NeighborQuery {
    /// Hops (0: the server's default).
    pub depth: u32,
    /// Only these kinds (empty: all).
    pub kinds: Vec<RelationKind>,
    /// At most so many neighbours (0: the server's default).
    pub limit: u32,
}

/// A subject reached from another.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Neighbor {
    /// The subject reached.
    pub subject_id: String,
    /// Hops from the start.
    pub depth: u32,
    /// The kind of the last relation followed.
    pub kind: RelationKind,
    /// The product of the weights along the path.
    pub path_weight: f64,
    /// The subjects along the path.
    pub path: Vec<String>,
}

/// The answer to [`Client::get_neighbors`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Neighbors {
    /// The neighbours.
    pub neighbors: Vec<Neighbor>,
    /// Whether the limit cut the list.
    pub truncated: bool,
}

/// One step of a path.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PathStep {
    /// The subject reached.
    pub subject_id: String,
    /// The relation followed.
    pub kind: RelationKind,
    /// Its weight.
    pub weight: f64,
}

/// The answer to [`Client::find_path`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Path {
    /// Whether a path exists within the depth.
    pub found: bool,
    /// Its steps.
    pub steps: Vec<PathStep>,
}

/// One scored neighbour's part in an association.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Contributor {
    /// The neighbour.
    pub subject_id: String,
    /// Hops away.
    pub depth: u32,
    /// Its score.
    pub score: f64,
    /// Its deviation from the baseline.
    pub deviation: f64,
    /// Its weight.
    pub weight: f64,
    /// What it adds.
    pub contribution: f64,
}

/// `subject.association` as rules read it, and how it is made.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Association {
    /// The value.
    pub association: f64,
    /// The neighbours that made it.
    pub contributors: Vec<Contributor>,
    /// The attenuation per hop.
    pub attenuation: f64,
}

impl Client {
    /// Creates or replaces relations.
    ///
    /// ```no_run
    /// # async fn run(client: credence::Client) -> credence::Result<()> {
    /// use credence::{Relation, RelationKind};
    /// let r = Relation::new("subject-0001", "subject-0002", RelationKind::Colleague);
    /// let result = client.put_relations(&[r]).await?;
    /// assert!(result.rejected.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn put_relations(&self, relations: &[Relation]) -> Result<RelationsResult> {
        let request = pb::PutRelationsRequest {
            relations: relations
                .iter()
                .map(|r| pb::Relation {
                    subject_id: r.subject_id.clone(),
                    other_subject_id: r.other_subject_id.clone(),
                    kind: r.kind.to_proto(),
                    weight: r.weight,
                    since: timestamp_opt(r.since),
                })
                .collect(),
        };
        let r = rpc!(
            self,
            graph.put_relations,
            "PutRelations",
            Retry::Safe,
            request
        )?;
        Ok(RelationsResult {
            upserted: r.upserted,
            rejected: r
                .rejected
                .into_iter()
                .map(|e| (e.index, e.reason))
                .collect(),
        })
    }

    /// Removes relations; returns how many existed.
    pub async fn remove_relations(&self, keys: &[RelationKey]) -> Result<u32> {
        let request = pb::RemoveRelationsRequest {
            relations: keys
                .iter()
                .map(|k| pb::RelationKey {
                    subject_id: k.subject_id.clone(),
                    other_subject_id: k.other_subject_id.clone(),
                    kind: k.kind.to_proto(),
                })
                .collect(),
        };
        let r = rpc!(
            self,
            graph.remove_relations,
            "RemoveRelations",
            Retry::Safe,
            request
        )?;
        Ok(r.removed)
    }

    /// The subjects within `query.depth` hops of `subject_id`.
    pub async fn get_neighbors(
        &self,
        subject_id: &str,
        query: &NeighborQuery,
    ) -> Result<Neighbors> {
        let request = pb::GetNeighborsRequest {
            subject_id: subject_id.to_owned(),
            depth: query.depth,
            kinds: kinds(&query.kinds),
            limit: query.limit,
        };
        let r = rpc!(
            self,
            graph.get_neighbors,
            "GetNeighbors",
            Retry::Safe,
            request
        )?;
        Ok(Neighbors {
            neighbors: all(r.neighbors, |n| {
                Ok(Neighbor {
                    kind: RelationKind::from_proto(n.kind)?,
                    subject_id: n.subject_id,
                    depth: n.depth,
                    path_weight: n.path_weight,
                    path: n.path,
                })
            })?,
            truncated: r.truncated,
        })
    }

    /// A shortest path between two subjects, within `max_depth` hops (0: the server's
    /// default), over relations of `kinds` (empty: all).
    pub async fn find_path(
        &self,
        from: &str,
        to: &str,
        max_depth: u32,
        relation_kinds: &[RelationKind],
    ) -> Result<Path> {
        let request = pb::FindPathRequest {
            from_subject_id: from.to_owned(),
            to_subject_id: to.to_owned(),
            max_depth,
            kinds: kinds(relation_kinds),
        };
        let r = rpc!(self, graph.find_path, "FindPath", Retry::Safe, request)?;
        Ok(Path {
            found: r.found,
            steps: all(r.steps, |s| {
                Ok(PathStep {
                    kind: RelationKind::from_proto(s.kind)?,
                    subject_id: s.subject_id,
                    weight: s.weight,
                })
            })?,
        })
    }

    /// A subject's association: the weighted mean of its scored neighbours' deviations from
    /// the baseline, as rules read it.
    pub async fn get_association(
        &self,
        subject_id: &str,
        depth: u32,
        relation_kinds: &[RelationKind],
    ) -> Result<Association> {
        let request = pb::GetAssociationRequest {
            subject_id: subject_id.to_owned(),
            depth,
            kinds: kinds(relation_kinds),
        };
        let r = rpc!(
            self,
            graph.get_association,
            "GetAssociation",
            Retry::Safe,
            request
        )?;
        Ok(Association {
            association: r.association,
            contributors: r
                .contributors
                .into_iter()
                .map(|c| Contributor {
                    subject_id: c.subject_id,
                    depth: c.depth,
                    score: c.score,
                    deviation: c.deviation,
                    weight: c.weight,
                    contribution: c.contribution,
                })
                .collect(),
            attenuation: r.attenuation,
        })
    }
}
