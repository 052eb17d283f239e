//! The texts of notifications, per locale. A message names the connection and the rounded
//! distance only: never a coordinate, a cell or a place name.

/// Locales with templates; the first is the fallback of last resort.
pub use crate::config::LOCALES;

/// What a device shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub body: String,
    /// The locale the texts are in.
    pub locale: &'static str,
}

/// Longest display name put in a message (in characters).
const MAX_NAME_CHARS: usize = 64;

/// The supported locale for a device's locale tag (`fr-CA` → `fr`), else `default`.
pub fn pick_locale(tag: Option<&str>, default: &str) -> &'static str {
    let lang = |t: &str| {
        let primary = t.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        LOCALES.iter().copied().find(|l| *l == primary)
    };
    tag.and_then(lang).or_else(|| lang(default)).unwrap_or(LOCALES[0])
}

/// A distance as people read it: `850 m`, `1.2 km` (`1,2 km` where the comma is the decimal
/// mark), `12 km`.
pub fn format_distance(metres: i64, locale: &str) -> String {
    let m = metres.max(0);
    if m < 1_000 {
        return format!("{m} m");
    }
    let text = if m < 10_000 {
        format!("{:.1} km", m as f64 / 1_000.0)
    } else {
        format!("{} km", (m as f64 / 1_000.0).round() as i64)
    };
    match locale {
        "en" => text,
        _ => text.replace('.', ","),
    }
}

/// "Alex is nearby — 1.2 km", in the device's language.
pub fn connection_nearby(locale_tag: Option<&str>, default_locale: &str, actor: &str, distance_m: i64) -> Message {
    let locale = pick_locale(locale_tag, default_locale);
    let name: String = actor.chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect();
    let d = format_distance(distance_m, locale);
    let (title, body) = match locale {
        "fr" => (
            "Contact à proximité".to_string(),
            format!("{name} est à proximité — {d}"),
        ),
        "de" => (
            "Kontakt in der Nähe".to_string(),
            format!("{name} ist in der Nähe — {d}"),
        ),
        "es" => ("Contacto cerca".to_string(), format!("{name} está cerca — {d}")),
        _ => ("Connection nearby".to_string(), format!("{name} is nearby — {d}")),
    };
    Message { title, body, locale }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_and_french() {
        let m = connection_nearby(None, "en", "Alex", 1_230);
        assert_eq!(m.body, "Alex is nearby — 1.2 km");
        let m = connection_nearby(Some("fr-CA"), "en", "Alex", 1_230);
        assert_eq!(m.body, "Alex est à proximité — 1,2 km");
        assert_eq!(m.locale, "fr");
        let m = connection_nearby(Some("xx"), "de", "Alex", 850);
        assert_eq!(m.body, "Alex ist in der Nähe — 850 m");
        assert_eq!(format_distance(23_400, "en"), "23 km");
    }

    #[test]
    fn names_are_cut_and_cleaned() {
        let long = "A".repeat(200) + "\n";
        let m = connection_nearby(None, "en", &long, 10);
        assert!(m.body.starts_with(&"A".repeat(64)));
        assert!(!m.body.contains('\n'));
    }
}
