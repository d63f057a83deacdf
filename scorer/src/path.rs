//! Field paths of conditions: `payload.<key>...`, `event.<name>`, `subject.<name>`.

use std::fmt;

/// A field of the event itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventField {
    /// `event.event_type`
    EventType,
    /// `event.event_subtype`
    EventSubtype,
    /// `event.source_system`
    SourceSystem,
    /// `event.location.region`
    Region,
    /// `event.location.district`
    District,
}

/// A field of the subject: profile fields, flags, lists and association come from outside
/// the subject's event stream; score and tier are the engine's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectField {
    /// `subject.region` (profile)
    Region,
    /// `subject.district` (profile)
    District,
    /// `subject.occupation` (profile)
    Occupation,
    /// `subject.birth_year` (profile)
    BirthYear,
    /// `subject.flags` (profile; a list of strings, empty without a profile)
    Flags,
    /// `subject.lists` (the list kinds the subject is on at the event's time)
    Lists,
    /// `subject.association` (from the social graph)
    Association,
    /// `subject.tier` (after decay, before any rule of the event)
    Tier,
    /// `subject.score` (after decay, before any rule of the event)
    Score,
}

impl SubjectField {
    /// True for the fields whose value comes from outside the subject's own event stream;
    /// a score change records what it read of these so replay can use the same values.
    pub const fn is_outside(self) -> bool {
        !matches!(self, SubjectField::Tier | SubjectField::Score)
    }

    /// The path text, e.g. `subject.flags`.
    pub const fn path(self) -> &'static str {
        match self {
            SubjectField::Region => "subject.region",
            SubjectField::District => "subject.district",
            SubjectField::Occupation => "subject.occupation",
            SubjectField::BirthYear => "subject.birth_year",
            SubjectField::Flags => "subject.flags",
            SubjectField::Lists => "subject.lists",
            SubjectField::Association => "subject.association",
            SubjectField::Tier => "subject.tier",
            SubjectField::Score => "subject.score",
        }
    }

    /// Every subject field, for lookups by path.
    pub const ALL: [SubjectField; 9] = [
        SubjectField::Region,
        SubjectField::District,
        SubjectField::Occupation,
        SubjectField::BirthYear,
        SubjectField::Flags,
        SubjectField::Lists,
        SubjectField::Association,
        SubjectField::Tier,
        SubjectField::Score,
    ];
}

/// A parsed condition path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldPath {
    /// Keys into the event payload, outermost first.
    Payload(Vec<String>),
    /// A field of the event.
    Event(EventField),
    /// A field of the subject.
    Subject(SubjectField),
}

impl FieldPath {
    /// Parses a dotted path, with an error that says what the known paths are.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (root, rest) = text.split_once('.').unwrap_or((text, ""));
        match root {
            "payload" => {
                let keys: Vec<String> = rest.split('.').map(str::to_owned).collect();
                if keys.iter().any(String::is_empty) {
                    return Err(format!(
                        "{text:?}: a payload path needs non-empty keys, like \"payload.amount\""
                    ));
                }
                Ok(FieldPath::Payload(keys))
            }
            "event" => {
                let field = match rest {
                    "event_type" => EventField::EventType,
                    "event_subtype" => EventField::EventSubtype,
                    "source_system" => EventField::SourceSystem,
                    "location.region" => EventField::Region,
                    "location.district" => EventField::District,
                    _ => {
                        return Err(format!(
                            "{text:?}: unknown event field; known: event.event_type, \
                             event.event_subtype, event.source_system, event.location.region, \
                             event.location.district"
                        ));
                    }
                };
                Ok(FieldPath::Event(field))
            }
            "subject" => SubjectField::ALL
                .into_iter()
                .find(|f| f.path() == text)
                .map(FieldPath::Subject)
                .ok_or_else(|| {
                    let known: Vec<&str> = SubjectField::ALL.iter().map(|f| f.path()).collect();
                    format!(
                        "{text:?}: unknown subject field; known: {}",
                        known.join(", ")
                    )
                }),
            _ => Err(format!(
                "{text:?}: unknown field root {root:?}; a path starts with payload., event. or \
                 subject."
            )),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPath::Payload(keys) => write!(f, "payload.{}", keys.join(".")),
            FieldPath::Event(field) => f.write_str(match field {
                EventField::EventType => "event.event_type",
                EventField::EventSubtype => "event.event_subtype",
                EventField::SourceSystem => "event.source_system",
                EventField::Region => "event.location.region",
                EventField::District => "event.location.district",
            }),
            FieldPath::Subject(field) => f.write_str(field.path()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_print_back() {
        for text in [
            "payload.amount",
            "payload.loan.days_late",
            "event.location.region",
            "event.event_subtype",
            "subject.flags",
            "subject.association",
        ] {
            assert_eq!(FieldPath::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn unknown_paths_are_refused_with_the_known_ones() {
        assert!(
            FieldPath::parse("profile.region")
                .unwrap_err()
                .contains("unknown field root")
        );
        assert!(
            FieldPath::parse("event.colour")
                .unwrap_err()
                .contains("event.event_type")
        );
        assert!(
            FieldPath::parse("subject.shoe_size")
                .unwrap_err()
                .contains("subject.flags")
        );
        assert!(
            FieldPath::parse("payload")
                .unwrap_err()
                .contains("non-empty keys")
        );
        assert!(
            FieldPath::parse("payload.a..b")
                .unwrap_err()
                .contains("non-empty keys")
        );
    }
}
