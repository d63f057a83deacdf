//! What the engine knows about a subject from outside its own event stream: profile,
//! lists and association. Live scoring reads the current values; replay rebuilds them from
//! what score changes recorded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::path::SubjectField;
use crate::time::Timestamp;
use crate::value::Value;

/// The profile fields rules can read. `None` fields do not resolve.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// Home region.
    pub region: Option<String>,
    /// Home district.
    pub district: Option<String>,
    /// Occupation.
    pub occupation: Option<String>,
    /// Year of birth.
    pub birth_year: Option<i32>,
    /// Flags such as `student`.
    pub flags: Vec<String>,
}

impl Profile {
    /// The fields rules read of a profile record whose unknown texts are empty and unknown
    /// birth year is 0 (the contract's and the stores' form): those do not resolve.
    pub fn from_record(
        region: &str,
        district: &str,
        occupation: &str,
        birth_year: i32,
        flags: &[String],
    ) -> Self {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Self {
            region: text(region),
            district: text(district),
            occupation: text(occupation),
            birth_year: (birth_year != 0).then_some(birth_year),
            flags: flags.to_vec(),
        }
    }
}

/// Which list an entry puts a subject on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// The block list (`"block"` in `subject.lists`).
    Block,
    /// The allow list (`"allow"` in `subject.lists`).
    Allow,
}

impl ListKind {
    /// The name rules see in `subject.lists`.
    pub const fn name(self) -> &'static str {
        match self {
            ListKind::Block => "block",
            ListKind::Allow => "allow",
        }
    }
}

/// The set of list kinds a subject is on at some time: what `subject.lists` reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListKinds {
    /// On the allow list.
    pub allow: bool,
    /// On the block list.
    pub block: bool,
}

impl ListKinds {
    /// The names, sorted (`"allow"` before `"block"`), as rules see them.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        [(self.allow, "allow"), (self.block, "block")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
    }
}

/// A subject's entry on a list, as far as scoring cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListEntry {
    /// Which list.
    pub kind: ListKind,
    /// When it stops counting; it counts for events strictly before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// A subject's outside context for one event.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubjectContext {
    /// The profile; `None` for a subject without one (no profile paths resolve, no flags).
    pub profile: Option<Profile>,
    /// List entries, expired ones included (expiry is checked against event time).
    pub lists: Vec<ListEntry>,
    /// Association value from the social graph; `None` does not resolve.
    pub association: Option<f64>,
}

impl SubjectContext {
    /// The context with no profile, no list entries and no association.
    pub const EMPTY: SubjectContext = SubjectContext {
        profile: None,
        lists: Vec::new(),
        association: None,
    };

    /// The list kinds the subject is on at event time `t`.
    pub fn lists_at(&self, t: Timestamp) -> ListKinds {
        let mut kinds = ListKinds::default();
        for entry in self
            .lists
            .iter()
            .filter(|e| e.expires_at.is_none_or(|exp| t < exp))
        {
            match entry.kind {
                ListKind::Block => kinds.block = true,
                ListKind::Allow => kinds.allow = true,
            }
        }
        kinds
    }

    /// A text field of the profile (`region`, `district`, `occupation`): `None` without a
    /// profile, when unset, and for any other field.
    pub fn profile_text(&self, field: SubjectField) -> Option<&str> {
        let profile = self.profile.as_ref()?;
        match field {
            SubjectField::Region => profile.region.as_deref(),
            SubjectField::District => profile.district.as_deref(),
            SubjectField::Occupation => profile.occupation.as_deref(),
            _ => None,
        }
    }

    /// The value of an outside subject field at event time `t`, as recorded in a score
    /// change's inputs; `None` when it does not resolve. Score and tier are not outside
    /// values and give `None`.
    pub fn outside_value(&self, field: SubjectField, t: Timestamp) -> Option<Value> {
        let profile = self.profile.as_ref();
        match field {
            SubjectField::Region | SubjectField::District | SubjectField::Occupation => {
                self.profile_text(field).map(Value::from)
            }
            SubjectField::BirthYear => profile
                .and_then(|p| p.birth_year)
                .map(|y| Value::Number(f64::from(y))),
            SubjectField::Flags => Some(Value::List(
                profile
                    .map(|p| p.flags.iter().map(|f| Value::String(f.clone())).collect())
                    .unwrap_or_default(),
            )),
            SubjectField::Lists => Some(Value::List(
                self.lists_at(t).names().map(Value::from).collect(),
            )),
            SubjectField::Association => self.association.map(Value::Number),
            SubjectField::Tier | SubjectField::Score => None,
        }
    }

    /// Rebuilds the context a score change saw from its recorded inputs (path -> value), for
    /// replay. Paths absent from the inputs do not resolve, exactly as when they were read.
    pub fn from_inputs(inputs: &BTreeMap<String, Value>) -> Self {
        let text = |field: SubjectField| match inputs.get(field.path()) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let strings = |field: SubjectField| match inputs.get(field.path()) {
            Some(Value::List(items)) => items
                .iter()
                .filter_map(|v| {
                    if let Value::String(s) = v {
                        Some(s.clone())
                    } else {
                        None
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        let birth_year = match inputs.get(SubjectField::BirthYear.path()) {
            Some(Value::Number(n)) => Some(*n as i32),
            _ => None,
        };
        let profile = Profile {
            region: text(SubjectField::Region),
            district: text(SubjectField::District),
            occupation: text(SubjectField::Occupation),
            birth_year,
            flags: strings(SubjectField::Flags),
        };
        let lists = strings(SubjectField::Lists)
            .iter()
            .filter_map(|name| match name.as_str() {
                "block" => Some(ListKind::Block),
                "allow" => Some(ListKind::Allow),
                _ => None,
            })
            .map(|kind| ListEntry {
                kind,
                expires_at: None,
            })
            .collect();
        let association = match inputs.get(SubjectField::Association.path()) {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        };
        Self {
            profile: Some(profile),
            lists,
            association,
        }
    }
}
