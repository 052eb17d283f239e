//! Other users' profiles (for the people one has a reason to see) and the LinkedIn import.

use super::{Code, Ctx, ServiceError, ServiceResult};
use crate::domain::linkedin::{self, ParseError, RowError};
use crate::domain::profile::ConnectionState;
use crate::store::graph;
use crate::store::users::{self, ProfileFields};
use std::collections::HashMap;
use uuid::Uuid;

/// Another user's profile and how they stand to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub id: Uuid,
    pub display_name: String,
    pub fields: ProfileFields,
    pub connection: ConnectionState,
}

/// The profile of `id` for the caller's connections, anyone with a pending request to or from
/// the caller, fellow attendees of an event both joined, and the caller themself; 404 for
/// everyone else, blocked pairs (either way) and suspended users included.
pub async fn profile(ctx: &Ctx, me: Uuid, id: Uuid) -> ServiceResult<Profile> {
    let row = users::profile_for(&ctx.db, me, id)
        .await?
        .filter(|r| r.id == me || r.connected || r.incoming || r.outgoing || r.fellow_attendee)
        .ok_or_else(ServiceError::not_found)?;
    Ok(Profile {
        id: row.id,
        display_name: row.display_name,
        fields: row.profile,
        connection: ConnectionState::of(row.connected, row.incoming, row.outgoing),
    })
}

/// How a row matched its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    Email,
    LinkedinUrl,
}

/// A user an import matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportMatch {
    pub user_id: Uuid,
    pub display_name: String,
    pub matched_by: MatchedBy,
    /// After the requests this import sent, if any.
    pub connection: ConnectionState,
}

/// What an import found (nothing of the rows is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub rows: usize,
    pub matched: Vec<ImportMatch>,
    /// Rows that matched nobody (unreadable rows included).
    pub unmatched: usize,
    /// Requests sent (with `request`).
    pub requested: usize,
    pub errors: Vec<RowError>,
}

/// Reads a LinkedIn `Connections.csv` and finds who of it uses the app: by email where the user
/// may be found by email, or by LinkedIn URL. With `request`, a connection request goes to each
/// match that is neither connected with the caller nor pending either way. A few set-based
/// queries whatever the number of rows.
pub async fn import_linkedin(ctx: &Ctx, me: Uuid, body: &[u8], request: bool) -> ServiceResult<Imported> {
    let parsed = linkedin::parse(body).map_err(|e| match e {
        ParseError::NoHeader => ServiceError::bad_request_in(
            "body",
            format!(
                "not a LinkedIn Connections.csv: no header line \"{}\"",
                linkedin::HEADER
            ),
        ),
        ParseError::TooManyRows => ServiceError::refused(Code::PayloadTooLarge, "at most 30000 rows per import"),
    })?;
    let mut hashes: Vec<Vec<u8>> = parsed.matchable.iter().filter_map(|r| r.email_sha256.clone()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let mut urls: Vec<String> = parsed.matchable.iter().filter_map(|r| r.linkedin_url.clone()).collect();
    urls.sort_unstable();
    urls.dedup();
    let found = graph::match_import(&ctx.db, me, &hashes, &urls).await?;
    let by_hash: HashMap<&[u8], usize> = found
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.email_sha256.as_deref().map(|h| (h, i)))
        .collect();
    let mut by_url: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, m) in found.iter().enumerate() {
        if let Some(u) = m.linkedin_url.as_deref() {
            by_url.entry(u).or_default().push(i);
        }
    }
    // each user once, by email when any row matched them by email
    let mut how: HashMap<usize, MatchedBy> = HashMap::new();
    let mut matched_rows = 0;
    for row in &parsed.matchable {
        let by_email = row.email_sha256.as_deref().and_then(|h| by_hash.get(h)).copied();
        let by_link = row.linkedin_url.as_deref().and_then(|u| by_url.get(u));
        if by_email.is_none() && by_link.is_none() {
            continue;
        }
        matched_rows += 1;
        if let Some(i) = by_email {
            how.insert(i, MatchedBy::Email);
        }
        for i in by_link.into_iter().flatten() {
            how.entry(*i).or_insert(MatchedBy::LinkedinUrl);
        }
    }
    let mut states: Vec<(usize, ConnectionState)> = how
        .keys()
        .map(|i| {
            let m = &found[*i];
            (*i, ConnectionState::of(m.connected, m.incoming, m.outgoing))
        })
        .collect();
    states.sort_unstable_by_key(|(i, _)| *i);
    let mut requested = 0;
    if request {
        let ask: Vec<Uuid> = states
            .iter()
            .filter(|(_, c)| *c == ConnectionState::None)
            .map(|(i, _)| found[*i].user_id)
            .collect();
        let sent: std::collections::HashSet<Uuid> = super::connections::request_many(ctx, me, &ask)
            .await?
            .into_iter()
            .collect();
        requested = sent.len();
        for (i, c) in &mut states {
            if sent.contains(&found[*i].user_id) {
                *c = ConnectionState::PendingOutgoing;
            }
        }
    }
    let matched = states
        .into_iter()
        .map(|(i, connection)| ImportMatch {
            user_id: found[i].user_id,
            display_name: found[i].display_name.clone(),
            matched_by: how.get(&i).copied().unwrap_or(MatchedBy::LinkedinUrl),
            connection,
        })
        .collect();
    tracing::info!(
        rows = parsed.rows,
        matched = how.len(),
        requested,
        "linkedin network imported"
    );
    Ok(Imported {
        rows: parsed.rows,
        unmatched: parsed.rows - matched_rows,
        matched,
        requested,
        errors: parsed.errors,
    })
}
