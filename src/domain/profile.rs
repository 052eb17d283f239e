//! Profile values parsed at the edge: the short texts (headline, company, title), the avatar URL
//! and the LinkedIn profile URL (stored normalised), and how two users stand to each other.

use super::FieldError;
use super::account::visible_text;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest headline, company or title, in characters.
pub const MAX_TEXT_CHARS: usize = 100;
/// Longest avatar URL, in characters.
pub const MAX_AVATAR_URL_CHARS: usize = 500;
/// Longest LinkedIn slug kept (LinkedIn allows 3 to 100 characters).
const MAX_SLUG_CHARS: usize = 100;

/// The pattern the spec states for avatar URLs: `https://`, a DNS name of ASCII labels without
/// double hyphens (no punycode to decode; the last label starts with a letter, so that it is
/// never read as an IPv4 address), an optional port and a path of printable ASCII. Every match of at most 500 characters parses (a property test checks it).
pub const AVATAR_URL_PATTERN: &str = "^https://([A-Za-z0-9]{1,20}(-[A-Za-z0-9]{1,20}){0,3}\\.){0,4}[A-Za-z][A-Za-z0-9]{0,20}(-[A-Za-z0-9]{1,20}){0,3}(:[1-9][0-9]{0,3})?(/[!-~]*)?$";

/// [`AVATAR_URL_PATTERN`] compiled once (`None` never happens: a test compiles it).
fn avatar_url_pattern() -> Option<&'static regex::Regex> {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(AVATAR_URL_PATTERN).ok());
    PATTERN.as_ref()
}

/// The pattern the spec states for LinkedIn profile URLs (the server also takes other
/// spellings: `http`, no scheme, upper case, a query; it stores the normalised one).
pub const LINKEDIN_URL_PATTERN: &str = "^(https?://)?(www\\.)?linkedin\\.com/in/[A-Za-z0-9_-]{1,100}/?$";
/// The one form LinkedIn profile URLs are stored and compared in: this prefix and a lower-case slug.
pub const LINKEDIN_PREFIX: &str = "https://www.linkedin.com/in/";

/// A headline, company or title: visible text of 1 to 100 characters after trimming, by the
/// rules of display names. The error names `field`.
pub fn parse_text(field: &str, raw: &str) -> Result<String, FieldError> {
    let t = raw.trim();
    let count = t.chars().count();
    if count == 0 || count > MAX_TEXT_CHARS {
        return Err(FieldError::new(field, "must be 1 to 100 characters, or null"));
    }
    if t.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    visible_text(field, t)?;
    Ok(t.to_string())
}

/// An avatar URL: an absolute `https` URL with a host, at most 500 characters, without
/// credentials, spaces or control characters. Kept as sent (trimmed).
pub fn parse_avatar_url(raw: &str) -> Result<String, FieldError> {
    let field = "avatar_url";
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > MAX_AVATAR_URL_CHARS {
        return Err(FieldError::new(field, "must be 1 to 500 characters, or null"));
    }
    // the URL parser silently drops tabs and newlines: refuse them before it sees them
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::new(field, "must not contain spaces or control characters"));
    }
    // the spec's pattern, enforced as stated (a schema-valid URL is accepted, and nothing else)
    if !avatar_url_pattern().is_some_and(|p| p.is_match(t)) {
        return Err(FieldError::new(field, "must be an https URL with a host name"));
    }
    let url = url::Url::parse(t).map_err(|_| FieldError::new(field, "must be an absolute https URL"))?;
    if url.scheme() != "https" {
        return Err(FieldError::new(field, "must be an https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new(field, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(field, "must not contain credentials"));
    }
    Ok(t.to_string())
}

/// Normalises a LinkedIn profile URL to `https://www.linkedin.com/in/<slug>`: any of `http`,
/// `https` or no scheme, with or without `www.`, any case, a trailing slash, a query or a
/// fragment all give the same text; the slug is percent-decoded and lower-cased. `None` for
/// anything that is not a LinkedIn profile URL.
pub fn normalise_linkedin_url(raw: &str) -> Option<String> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 2_000 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let lower = t.to_ascii_lowercase();
    let with_scheme = if lower.starts_with("https://") || lower.starts_with("http://") {
        t.to_string()
    } else if lower.contains("://") {
        return None;
    } else {
        format!("https://{t}")
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    if url.port().is_some() || !matches!(url.host_str()?, "linkedin.com" | "www.linkedin.com") {
        return None;
    }
    let mut segments = url.path_segments()?;
    if !segments.next()?.eq_ignore_ascii_case("in") {
        return None;
    }
    let slug_raw = segments.next()?;
    match (segments.next(), segments.next()) {
        (None, _) | (Some(""), None) => {}
        _ => return None,
    }
    let slug = percent_encoding::percent_decode_str(slug_raw)
        .decode_utf8()
        .ok()?
        .to_lowercase();
    let count = slug.chars().count();
    if count == 0 || count > MAX_SLUG_CHARS || !slug.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_')) {
        return None;
    }
    Some(format!("{LINKEDIN_PREFIX}{slug}"))
}

/// A LinkedIn URL as a profile field: the normalised form, or a field error.
pub fn parse_linkedin_url(raw: &str) -> Result<String, FieldError> {
    normalise_linkedin_url(raw).ok_or_else(|| {
        FieldError::new(
            "linkedin_url",
            "must be a LinkedIn profile URL like https://www.linkedin.com/in/your-name",
        )
    })
}

/// How another user stands to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connected,
    /// They asked the caller.
    PendingIncoming,
    /// The caller asked them.
    PendingOutgoing,
    None,
}

impl ConnectionState {
    /// From what holds between the two (a connection wins over requests, an incoming over an outgoing one).
    pub fn of(connected: bool, incoming: bool, outgoing: bool) -> Self {
        match (connected, incoming, outgoing) {
            (true, _, _) => Self::Connected,
            (false, true, _) => Self::PendingIncoming,
            (false, false, true) => Self::PendingOutgoing,
            _ => Self::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matching(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
        let inner = pattern.trim_start_matches('^').trim_end_matches('$');
        proptest::string::string_regex(inner).expect("a pattern proptest can generate from")
    }

    #[test]
    fn avatar_urls_outside_the_pattern_are_refused() {
        assert!(avatar_url_pattern().is_some());
        for bad in [
            "https://o.A*",
            "https://1.2.3.4/a.png",
            "https://a.b:99999/",
            "https://user@a.b/",
        ] {
            assert!(parse_avatar_url(bad).is_err(), "{bad}");
        }
        assert!(parse_avatar_url("https://cdn.example.com:8443/a/b.png?s=64").is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The spec promises no avatar URL the server refuses.
        #[test]
        fn every_avatar_url_the_spec_allows_parses(u in matching(AVATAR_URL_PATTERN)) {
            prop_assume!(u.chars().count() <= MAX_AVATAR_URL_CHARS);
            prop_assert!(parse_avatar_url(&u).is_ok(), "{u:?}: {:?}", parse_avatar_url(&u));
        }

        /// The spec promises no LinkedIn URL the server refuses.
        #[test]
        fn every_linkedin_url_the_spec_allows_parses(u in matching(LINKEDIN_URL_PATTERN)) {
            prop_assert!(parse_linkedin_url(&u).is_ok(), "{u:?}");
        }

        /// Nor a headline, company or title.
        #[test]
        fn every_text_the_spec_allows_parses(t in matching(super::super::account::VISIBLE_TEXT_PATTERN)) {
            prop_assume!(t.chars().count() <= MAX_TEXT_CHARS);
            prop_assert!(parse_text("headline", &t).is_ok(), "{t:?}");
        }
    }

    #[test]
    fn texts_follow_the_display_name_rules() {
        assert_eq!(parse_text("headline", "  Builds maps  ").as_deref(), Ok("Builds maps"));
        assert!(parse_text("company", &"x".repeat(100)).is_ok());
        let e = parse_text("company", &"x".repeat(101)).expect_err("too long");
        assert_eq!(e.field, "company");
        for bad in ["", "   ", "a\u{202E}b", "\u{200B}", "a\u{0007}"] {
            assert!(parse_text("title", bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_text("title", "CTO · Zoë 李").as_deref(), Ok("CTO · Zoë 李"));
    }

    #[test]
    fn avatar_urls_are_https() {
        assert!(parse_avatar_url("https://cdn.example.com/a.png").is_ok());
        let long = format!("https://cdn.example.com/{}", "a".repeat(476));
        assert_eq!(long.len(), 500);
        assert!(parse_avatar_url(&long).is_ok());
        assert!(parse_avatar_url(&format!("{long}b")).is_err());
        for bad in [
            "http://cdn.example.com/a.png",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "cdn.example.com/a.png",
            "https://",
            "https://user:pw@example.com/a.png",
            "https://example.com/a b.png",
            "https://example.com/a\n.png",
            "",
        ] {
            assert!(parse_avatar_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn linkedin_urls_normalise() {
        let want = Some("https://www.linkedin.com/in/ann-lee-42".to_string());
        for same in [
            "https://www.linkedin.com/in/ann-lee-42",
            "https://www.linkedin.com/in/ann-lee-42/",
            "http://linkedin.com/in/Ann-Lee-42",
            "HTTPS://WWW.LINKEDIN.COM/IN/ANN-LEE-42/",
            "www.linkedin.com/in/ann-lee-42",
            "linkedin.com/in/ann-lee-42?trk=people",
            " https://www.linkedin.com/in/ann-lee-42#about ",
        ] {
            assert_eq!(normalise_linkedin_url(same), want, "{same:?}");
        }
        assert_eq!(
            normalise_linkedin_url("https://www.linkedin.com/in/jos%C3%A9"),
            normalise_linkedin_url("https://www.linkedin.com/in/JOSÉ")
        );
        for bad in [
            "",
            "https://www.linkedin.com/",
            "https://www.linkedin.com/in/",
            "https://www.linkedin.com/company/acme",
            "https://www.linkedin.com/in/a/b",
            "https://evil.com/in/ann",
            "https://www.linkedin.com.evil.com/in/ann",
            "https://www.linkedin.com:8443/in/ann",
            "ftp://www.linkedin.com/in/ann",
            "https://www.linkedin.com/in/a%2Fb",
            "https://www.linkedin.com/in/a b",
        ] {
            assert_eq!(normalise_linkedin_url(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn connection_state() {
        assert_eq!(ConnectionState::of(true, true, true), ConnectionState::Connected);
        assert_eq!(
            ConnectionState::of(false, true, false),
            ConnectionState::PendingIncoming
        );
        assert_eq!(
            ConnectionState::of(false, false, true),
            ConnectionState::PendingOutgoing
        );
        assert_eq!(ConnectionState::of(false, false, false), ConnectionState::None);
    }

    fn slug() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9][a-zA-Z0-9_-]{0,40}"
    }

    proptest! {
        #[test]
        fn linkedin_normaliser_never_panics_and_is_idempotent(s in ".{0,200}") {
            let _ = parse_avatar_url(&s);
            let _ = parse_text("headline", &s);
            if let Some(n) = normalise_linkedin_url(&s) {
                prop_assert!(n.starts_with(LINKEDIN_PREFIX));
                prop_assert_eq!(normalise_linkedin_url(&n), Some(n.clone()));
            }
        }

        #[test]
        fn linkedin_variants_normalise_alike(
            slug in slug(),
            scheme in prop::sample::select(vec!["https://", "http://", "", "HTTPS://"]),
            www in prop::sample::select(vec!["www.", "", "WWW."]),
            host in prop::sample::select(vec!["linkedin.com", "LinkedIn.com"]),
            slash in prop::bool::ANY,
        ) {
            let url = format!("{scheme}{www}{host}/in/{slug}{}", if slash { "/" } else { "" });
            prop_assert_eq!(
                normalise_linkedin_url(&url),
                Some(format!("{LINKEDIN_PREFIX}{}", slug.to_lowercase()))
            );
        }
    }
}
