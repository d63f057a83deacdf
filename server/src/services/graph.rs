//! `GraphService`: relations, neighbours, paths, association.

use std::sync::Arc;

use credence_proto::v1 as pb;
use credence_proto::v1::graph_service_server::GraphService;
use credence_storage::{RelationKey, RelationKind};
use tonic::{Request, Response, Status};

use super::{Node, audit_items, required_id};
use crate::association::{self, Reach};
use crate::auth::caller_name;
use crate::convert;
use crate::error::{Error, quote};

/// Most relations one request writes or removes.
const MAX_RELATIONS: usize = 10_000;

/// The graph handlers.
pub struct GraphApi(pub Arc<Node>);

/// A relation's problem, naming the field.
fn relation_problem(r: &pb::Relation) -> Option<String> {
    if r.subject_id.is_empty() {
        return Some("subject_id: is required".into());
    }
    if r.other_subject_id.is_empty() {
        return Some("other_subject_id: is required".into());
    }
    if r.subject_id == r.other_subject_id {
        return Some(format!(
            "other_subject_id: a subject cannot be related to itself ({})",
            quote(&r.subject_id)
        ));
    }
    if let Err(problem) = convert::relation_kind("kind", r.kind) {
        return Some(problem.to_string());
    }
    if !(r.weight.is_finite() && (0.0..=1.0).contains(&r.weight)) {
        return Some(format!("weight: {} is not in (0, 1] (0 means 1)", r.weight));
    }
    None
}

/// Relation-kind filters: each must be a real kind.
fn kinds(field: &str, kinds: &[i32]) -> Result<Vec<RelationKind>, Status> {
    convert::relation_kinds(field, kinds).map_err(|e| Error::from(e).into())
}

fn too_many(field: &str, n: usize) -> Result<(), Status> {
    if n > MAX_RELATIONS {
        return Err(Error::invalid(format!(
            "{field}: at most {MAX_RELATIONS} per call, not {n}"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl GraphService for GraphApi {
    async fn put_relations(
        &self,
        request: Request<pb::PutRelationsRequest>,
    ) -> Result<Response<pb::PutRelationsResponse>, Status> {
        let actor = caller_name(&request);
        let relations = request.into_inner().relations;
        too_many("relations", relations.len())?;
        let mut rejected = Vec::new();
        let mut valid = Vec::with_capacity(relations.len());
        for (i, r) in relations.iter().enumerate() {
            let checked = match relation_problem(r) {
                Some(reason) => Err(reason),
                None => convert::relation(r).map_err(|e| e.to_string()),
            };
            match checked {
                Ok(mut r) => {
                    if r.weight == 0.0 {
                        r.weight = 1.0;
                    }
                    valid.push(r);
                }
                Err(reason) => rejected.push(pb::RelationError {
                    #[allow(clippy::cast_possible_truncation, reason = "at most MAX_RELATIONS")]
                    index: i as u32,
                    reason,
                }),
            }
        }
        let pairs: Vec<String> = valid
            .iter()
            .map(|r| format!("{}-{}", r.subject_id, r.other_subject_id))
            .collect();
        let upserted = self
            .0
            .stores
            .graph
            .put_relations(valid)
            .await
            .map_err(Error::from)?;
        if !pairs.is_empty() {
            self.0
                .audit(
                    actor,
                    "PutRelations",
                    audit_items("relations", pairs.iter().map(String::as_str)),
                    format!("{upserted} upserted"),
                )
                .await?;
        }
        Ok(Response::new(pb::PutRelationsResponse {
            upserted,
            rejected,
        }))
    }

    async fn remove_relations(
        &self,
        request: Request<pb::RemoveRelationsRequest>,
    ) -> Result<Response<pb::RemoveRelationsResponse>, Status> {
        let actor = caller_name(&request);
        let keys = request.into_inner().relations;
        too_many("relations", keys.len())?;
        let mut checked = Vec::with_capacity(keys.len());
        for (i, k) in keys.into_iter().enumerate() {
            if k.subject_id.is_empty() || k.other_subject_id.is_empty() {
                return Err(Error::invalid(format!(
                    "relations[{i}]: subject_id and other_subject_id are required"
                )));
            }
            // UNSPECIFIED removes every kind between the two.
            let kind = match k.kind {
                0 => None,
                kind => Some(
                    convert::relation_kind(&format!("relations[{i}].kind"), kind)
                        .map_err(Error::from)?,
                ),
            };
            checked.push(RelationKey {
                subject_id: k.subject_id,
                other_subject_id: k.other_subject_id,
                kind,
            });
        }
        let pairs: Vec<String> = checked
            .iter()
            .map(|k| format!("{}-{}", k.subject_id, k.other_subject_id))
            .collect();
        let removed = self
            .0
            .stores
            .graph
            .remove_relations(checked)
            .await
            .map_err(Error::from)?;
        if !pairs.is_empty() {
            self.0
                .audit(
                    actor,
                    "RemoveRelations",
                    audit_items("relations", pairs.iter().map(String::as_str)),
                    format!("{removed} removed"),
                )
                .await?;
        }
        Ok(Response::new(pb::RemoveRelationsResponse { removed }))
    }

    async fn get_neighbors(
        &self,
        request: Request<pb::GetNeighborsRequest>,
    ) -> Result<Response<pb::GetNeighborsResponse>, Status> {
        let r = request.into_inner();
        let id = required_id("subject_id", &r.subject_id)?;
        let depth = match r.depth {
            0 => 1,
            d @ 1..=3 => d,
            d => {
                return Err(Error::invalid(format!("depth: {d} is not in 1..=3")));
            }
        };
        let kinds = kinds("kinds", &r.kinds)?;
        let limit = match r.limit {
            0 => 1_000,
            n => n.min(100_000) as usize,
        };
        let (neighbors, truncated) = self
            .0
            .stores
            .graph
            .neighbors(id, depth, &kinds, limit)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::GetNeighborsResponse {
            neighbors: neighbors.into_iter().map(convert::neighbor_to_pb).collect(),
            truncated,
        }))
    }

    async fn find_path(
        &self,
        request: Request<pb::FindPathRequest>,
    ) -> Result<Response<pb::FindPathResponse>, Status> {
        let r = request.into_inner();
        let from = required_id("from_subject_id", &r.from_subject_id)?;
        let to = required_id("to_subject_id", &r.to_subject_id)?;
        let max_depth = match r.max_depth {
            0 => 6,
            d @ 1..=6 => d,
            d => {
                return Err(Error::invalid(format!("max_depth: {d} is not in 1..=6")));
            }
        };
        let kinds = kinds("kinds", &r.kinds)?;
        let path = self
            .0
            .stores
            .graph
            .find_path(from, to, max_depth, &kinds)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::FindPathResponse {
            found: path.is_some(),
            steps: path
                .unwrap_or_default()
                .into_iter()
                .map(convert::path_step_to_pb)
                .collect(),
        }))
    }

    async fn get_association(
        &self,
        request: Request<pb::GetAssociationRequest>,
    ) -> Result<Response<pb::GetAssociationResponse>, Status> {
        let r = request.into_inner();
        let id = required_id("subject_id", &r.subject_id)?;
        let settings = &self.0.config.graph;
        let depth = match r.depth {
            0 => settings.association_depth,
            d @ 1..=3 => d,
            d => {
                return Err(Error::invalid(format!("depth: {d} is not in 1..=3")));
            }
        };
        let kinds = kinds("kinds", &r.kinds)?;
        let reach = Reach {
            depth,
            kinds: &kinds,
            attenuation: settings.association_attenuation,
            baseline: self.0.catalog.live().engine.config().baseline,
        };
        let (value, contributors) = association::compute(&self.0.stores, id, reach)
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::GetAssociationResponse {
            association: value.unwrap_or(0.0),
            contributors: contributors
                .into_iter()
                .map(convert::contributor_to_pb)
                .collect(),
            attenuation: settings.association_attenuation,
        }))
    }
}
