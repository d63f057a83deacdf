//! Paging: a page size and an opaque continuation token.

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

    /// The position the token encodes (0 for the first page). Backends that page by position
    /// use this; a token that is not one of ours is refused naming it.
    pub fn offset(&self) -> Result<usize> {
        if self.token.is_empty() {
            return Ok(0);
        }
        self.token
            .strip_prefix('p')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                StorageError::Invalid(format!(
                    "page_token {:?} is not a token this server issued; pass the \
                     next_page_token of the previous page, or nothing for the first page",
                    self.token
                ))
            })
    }

    /// Builds a page from the items at [`Page::offset`]: `items` holds up to `limit() + 1`
    /// items, the extra one only saying that another page exists.
    pub fn paged<T>(&self, mut items: Vec<T>) -> Result<Paged<T>> {
        let start = self.offset()?;
        let limit = self.limit();
        let next_token = if items.len() > limit {
            items.truncate(limit);
            format!("p{}", start + limit)
        } else {
            String::new()
        };
        Ok(Paged { items, next_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_tokens_are_refused() {
        let page = Page::first(2);
        let paged = page.paged(vec![1, 2, 3]).unwrap();
        assert_eq!(paged.items, vec![1, 2]);
        let next = Page {
            size: 2,
            token: paged.next_token,
        };
        assert_eq!(next.offset().unwrap(), 2);
        assert!(next.paged(vec![3]).unwrap().next_token.is_empty());
        let err = Page {
            size: 2,
            token: "abc".into(),
        }
        .offset()
        .unwrap_err();
        assert!(err.to_string().contains("page_token \"abc\""), "{err}");
    }

    #[test]
    fn sizes_default_and_cap() {
        assert_eq!(Page::first(0).limit(), 100);
        assert_eq!(Page::first(5_000).limit(), 1_000);
    }
}
