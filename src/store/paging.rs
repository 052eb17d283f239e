//! Keyset pagination of lists ordered newest first by `(time, id)`: an opaque cursor, a page,
//! and the one query shape every list uses (no duplicates or gaps while the list changes).

use super::StoreResult;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::PgPool;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// Position in a list ordered by `(time DESC, id DESC)`: the last item returned.
/// On the wire it is opaque: base64url of 8 bytes of microseconds since the epoch and 16 id bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: OffsetDateTime,
    pub id: Uuid,
}

/// The ends of the calendar as cursors see it (within PostgreSQL's `timestamptz` and `time`'s range).
const PG_MIN: OffsetDateTime = time::macros::datetime!(0001-01-01 0:00 UTC);
const PG_MAX: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59.999999 UTC);

impl Cursor {
    pub fn encode(&self) -> String {
        let micros = (self.at.unix_timestamp_nanos() / 1_000) as i64;
        let mut buf = [0u8; 24];
        buf[..8].copy_from_slice(&micros.to_be_bytes());
        buf[8..].copy_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// `None` when the text is not a cursor of this shape (32 characters of base64url, the
    /// pattern the spec states; empty is the first page). Every text of that shape is a position: a time outside the
    /// calendar's range stands for its end (a list after it is empty or whole, never an error).
    pub fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let bytes: [u8; 24] = bytes.try_into().ok()?;
        let micros = i64::from_be_bytes(bytes[..8].try_into().ok()?);
        // PostgreSQL's timestamptz starts in 4713 BC, `time` at -9999: a time before year 1 (or
        // beyond the calendar) is clamped to its end, never sent to PostgreSQL (which refused it)
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .unwrap_or(if micros < 0 { PG_MIN } else { PG_MAX })
            .clamp(PG_MIN, PG_MAX);
        Some(Self {
            at,
            id: Uuid::from_bytes(bytes[8..].try_into().ok()?),
        })
    }
}

/// One page of a list; `next` is set when more items may follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// Cuts `limit + 1` fetched rows to a page.
pub fn page<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let next = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(key)
    } else {
        None
    };
    Page { items: rows, next }
}

/// A list query: `select` filters on `$1 = owner` and ends in a WHERE clause; rows are ordered
/// newest first by the columns `by = (time, id)`; `tail` goes before the ORDER BY (a GROUP BY).
pub struct Sorted<'a> {
    pub select: &'a str,
    pub by: (&'a str, &'a str),
    pub tail: &'a str,
}

impl<'a> Sorted<'a> {
    /// `select`, newest first by the columns `(time, id)`.
    pub fn newest(select: &'a str, time: &'a str, id: &'a str) -> Self {
        Self {
            select,
            by: (time, id),
            tail: "",
        }
    }

    /// With `tail` before the ORDER BY (a GROUP BY).
    pub fn then(self, tail: &'a str) -> Self {
        Self { tail, ..self }
    }
}

/// A row of a keyset list: its position, the cursor of the next page when it is the last.
pub trait Keyed {
    fn key(&self) -> Cursor;
}

/// One page of a [`Sorted`] list after `cursor`.
pub async fn keyset<T>(
    db: &PgPool,
    Sorted {
        select,
        by: (at, id),
        tail,
    }: Sorted<'_>,
    owner: Uuid,
    limit: i64,
    cursor: Option<Cursor>,
) -> StoreResult<Page<T>>
where
    T: for<'r> sqlx::FromRow<'r, PgRow> + Keyed + Send + Unpin,
{
    let after = if cursor.is_some() {
        format!("AND ({at}, {id}) < ($3, $4)")
    } else {
        String::new()
    };
    let sql = format!("{select} {after} {tail} ORDER BY {at} DESC, {id} DESC LIMIT $2");
    let mut query = sqlx::query_as::<_, T>(&sql).bind(owner).bind(limit + 1);
    if let Some(c) = cursor {
        query = query.bind(c.at).bind(c.id);
    }
    Ok(page(query.fetch_all(db).await?, limit, T::key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cut_the_extra_row_and_point_at_the_last_item() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let rows: Vec<Uuid> = (0..4u128).map(Uuid::from_u128).collect();
        let key = |id: &Uuid| Cursor { at, id: *id };
        let p = page(rows.clone(), 3, key);
        assert_eq!(p.items, rows[..3].to_vec());
        assert_eq!(p.next, Some(Cursor { at, id: rows[2] }));
        let p = page(rows[..3].to_vec(), 3, key);
        assert_eq!(p.next, None);
        let c = Cursor {
            at: OffsetDateTime::now_utc().replace_nanosecond(123_000).expect("valid"),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
    }
}
