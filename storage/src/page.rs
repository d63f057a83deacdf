//! Paging: a page size and an opaque keyset cursor.
//!
//! A page token names the listing it belongs to and the sort key of the last item handed
//! out; the next page is "the items whose key is greater, in key order". Every backend can
//! answer that with a range read (`WHERE (keys) > (last) ORDER BY keys LIMIT n + 1`), which
//! CQL, MongoDB and InfluxDB do cheaply, where OFFSET is missing (CQL) or linear in the
//! position (Mongo's `skip`). Tokens are versioned (a leading `1`) and base64url encoded, so
//! the encoding can change without clients noticing; a token that does not decode, belongs
//! to another listing or has the wrong key shape is [`StorageError::Invalid`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Result, StorageError};

/// Which page of a listing to return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Most items to return; 0 means the role's default (100), and it is capped at 1,000.
    pub size: u32,
    /// The `next_page_token` of the previous page; empty for the first page.
    pub token: String,
}

/// One page of results.
#[derive(Clone, Debug, PartialEq)]
pub struct Paged<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Token for the next page; empty when this is the last one.
    pub next_token: String,
}

/// One part of a sort key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyPart {
    /// A signed integer (times in nanoseconds, kinds).
    I64(i64),
    /// An unsigned integer (partitions, offsets, indexes).
    U64(u64),
    /// Text (ids, names).
    Text(String),
}

/// The type of one part of a listing's sort key, to check a token's shape against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// [`KeyPart::I64`].
    I64,
    /// [`KeyPart::U64`].
    U64,
    /// [`KeyPart::Text`].
    Text,
}

impl KeyPart {
    fn kind(&self) -> KeyKind {
        match self {
            Self::I64(_) => KeyKind::I64,
            Self::U64(_) => KeyKind::U64,
            Self::Text(_) => KeyKind::Text,
        }
    }
}

/// Token format version: the first character of every token.
const VERSION: char = '1';
/// Characters of a refused token quoted back (client input is never echoed whole).
const QUOTED: usize = 16;

impl Page {
    /// Default page size.
    pub const DEFAULT_SIZE: u32 = 100;
    /// Largest page size.
    pub const MAX_SIZE: u32 = 1_000;

    /// A first page of `size` items.
    pub fn first(size: u32) -> Self {
        Self {
            size,
            token: String::new(),
        }
    }

    /// The effective page size.
    pub fn limit(&self) -> usize {
        match self.size {
            0 => Self::DEFAULT_SIZE as usize,
            n => n.min(Self::MAX_SIZE) as usize,
        }
    }

    /// The sort key the page starts after (`None` for the first page). `listing` names the
    /// listing (a token of another listing is refused) and `shape` the types of its key.
    pub fn after(&self, listing: &str, shape: &[KeyKind]) -> Result<Option<Vec<KeyPart>>> {
        if self.token.is_empty() {
            return Ok(None);
        }
        let key = decode(&self.token)
            .filter(|(name, key)| {
                name == listing
                    && key.len() == shape.len()
                    && key.iter().zip(shape).all(|(k, s)| k.kind() == *s)
            })
            .map(|(_, key)| key)
            .ok_or_else(|| self.refused())?;
        Ok(Some(key))
    }

    /// Builds a page from up to `limit() + 1` items read after [`Page::after`] in key order
    /// (the extra one only says another page exists); the token carries the key of the last
    /// item kept.
    pub fn paged<T>(
        &self,
        listing: &str,
        mut items: Vec<T>,
        key: impl Fn(&T) -> Vec<KeyPart>,
    ) -> Paged<T> {
        let limit = self.limit();
        let next_token = if items.len() > limit {
            items.truncate(limit);
            items
                .last()
                .map(|last| encode(listing, &key(last)))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Paged { items, next_token }
    }

    fn refused(&self) -> StorageError {
        let prefix: String = self.token.chars().take(QUOTED).collect();
        let more = if self.token.chars().count() > QUOTED {
            "…"
        } else {
            ""
        };
        StorageError::Invalid(format!(
            "page_token {prefix:?}{more} is not a token this listing issued; pass the \
             next_page_token of the previous page of the same listing, or nothing for the \
             first page"
        ))
    }
}

/// `1` + base64url of: the listing name, then each key part (tag byte, then 8 bytes
/// big-endian or a length-prefixed UTF-8 text).
fn encode(listing: &str, key: &[KeyPart]) -> String {
    let mut bytes = Vec::with_capacity(64);
    put_text(&mut bytes, listing);
    for part in key {
        match part {
            KeyPart::I64(v) => {
                bytes.push(b'i');
                bytes.extend_from_slice(&v.to_be_bytes());
            }
            KeyPart::U64(v) => {
                bytes.push(b'u');
                bytes.extend_from_slice(&v.to_be_bytes());
            }
            KeyPart::Text(t) => {
                bytes.push(b's');
                put_text(&mut bytes, t);
            }
        }
    }
    let mut token = String::from(VERSION);
    token.push_str(&URL_SAFE_NO_PAD.encode(bytes));
    token
}

fn put_text(bytes: &mut Vec<u8>, text: &str) {
    bytes.extend_from_slice(&(text.len() as u32).to_be_bytes());
    bytes.extend_from_slice(text.as_bytes());
}

/// The listing name and key of a token; `None` for anything we did not encode.
fn decode(token: &str) -> Option<(String, Vec<KeyPart>)> {
    let body = token.strip_prefix(VERSION)?;
    let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
    let mut rest = bytes.as_slice();
    let listing = take_text(&mut rest)?;
    let mut key = Vec::new();
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        key.push(match tag {
            b'i' => KeyPart::I64(i64::from_be_bytes(take(&mut rest, 8)?.try_into().ok()?)),
            b'u' => KeyPart::U64(u64::from_be_bytes(take(&mut rest, 8)?.try_into().ok()?)),
            b's' => KeyPart::Text(take_text(&mut rest)?),
            _ => return None,
        });
    }
    Some((listing, key))
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

fn take_text(rest: &mut &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(take(rest, 4)?.try_into().ok()?) as usize;
    String::from_utf8(take(rest, len)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: &[KeyKind] = &[KeyKind::I64, KeyKind::Text, KeyKind::U64];

    #[allow(clippy::trivially_copy_pass_by_ref, reason = "the shape paged() takes")]
    fn key(n: &i64) -> Vec<KeyPart> {
        vec![
            KeyPart::I64(*n),
            KeyPart::Text(format!("ü{n}")),
            KeyPart::U64(u64::MAX),
        ]
    }

    #[test]
    fn tokens_carry_the_last_key() {
        let page = Page::first(2);
        let paged = page.paged("events", vec![-1, 2, 3], key);
        assert_eq!(paged.items, vec![-1, 2]);
        let next = Page {
            size: 2,
            token: paged.next_token,
        };
        assert!(next.token.starts_with('1'), "{}", next.token);
        assert_eq!(next.after("events", SHAPE).unwrap(), Some(key(&2)));
        assert!(next.paged("events", vec![3], key).next_token.is_empty());
        assert_eq!(Page::first(2).after("events", SHAPE).unwrap(), None);
    }

    #[test]
    fn forged_and_foreign_tokens_are_refused_quoting_a_prefix() {
        let token = Page::first(1).paged("events", vec![1, 2], key).next_token;
        let long = "x".repeat(500);
        let mut flipped = token.clone();
        flipped.pop();
        for bad in [
            "abc".to_owned(),
            "p-5".to_owned(),
            long.clone(),
            flipped,
            format!("2{}", &token[1..]),
            format!("1{}", URL_SAFE_NO_PAD.encode(b"\xff\xff\xff\xff")),
        ] {
            let err = Page {
                size: 1,
                token: bad.clone(),
            }
            .after("events", SHAPE)
            .unwrap_err();
            assert!(matches!(err, StorageError::Invalid(_)), "{err:?}");
            assert!(!err.to_string().contains(&long), "quotes the whole token");
        }
        let page = Page { size: 1, token };
        // Another listing, or another key shape: foreign.
        assert!(page.after("history", SHAPE).is_err());
        assert!(page.after("events", &SHAPE[..2]).is_err());
    }

    #[test]
    fn sizes_default_and_cap() {
        assert_eq!(Page::first(0).limit(), 100);
        assert_eq!(Page::first(5_000).limit(), 1_000);
    }
}
