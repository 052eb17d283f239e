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
    let name = clean_name(actor);
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

fn clean_name(actor: &str) -> String {
    actor.chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect()
}

/// "Alex wants to connect", in the device's language.
pub fn connection_request(locale_tag: Option<&str>, default_locale: &str, actor: &str) -> Message {
    let locale = pick_locale(locale_tag, default_locale);
    let name = clean_name(actor);
    let (title, body) = match locale {
        "fr" => ("Demande de contact", format!("{name} souhaite se connecter avec vous")),
        "de" => ("Kontaktanfrage", format!("{name} möchte sich mit Ihnen vernetzen")),
        "es" => ("Solicitud de contacto", format!("{name} quiere conectar contigo")),
        _ => ("Connection request", format!("{name} wants to connect")),
    };
    Message {
        title: title.into(),
        body,
        locale,
    }
}

/// "Alex accepted your connection request", in the device's language.
pub fn connection_accepted(locale_tag: Option<&str>, default_locale: &str, actor: &str) -> Message {
    let locale = pick_locale(locale_tag, default_locale);
    let name = clean_name(actor);
    let (title, body) = match locale {
        "fr" => ("Demande acceptée", format!("{name} a accepté votre demande de contact")),
        "de" => (
            "Anfrage angenommen",
            format!("{name} hat Ihre Kontaktanfrage angenommen"),
        ),
        "es" => ("Solicitud aceptada", format!("{name} aceptó tu solicitud de contacto")),
        _ => ("Request accepted", format!("{name} accepted your connection request")),
    };
    Message {
        title: title.into(),
        body,
        locale,
    }
}

/// "Alex's trip meets yours, 2027-03-02 – 2027-03-04": the shared dates (ISO 8601), never the place.
pub fn trip_overlap(
    locale_tag: Option<&str>,
    default_locale: &str,
    actor: &str,
    from: Option<time::Date>,
    to: Option<time::Date>,
) -> Message {
    let locale = pick_locale(locale_tag, default_locale);
    let name = clean_name(actor);
    let iso = |d: Option<time::Date>| d.map(crate::domain::trips::format_date).unwrap_or_default();
    let (from, to) = (iso(from), iso(to));
    let (title, body) = match locale {
        "fr" => (
            "Voyages croisés",
            format!("Le voyage de {name} croise le vôtre, {from} – {to}"),
        ),
        "de" => (
            "Reisen treffen sich",
            format!("Die Reise von {name} trifft Ihre, {from} – {to}"),
        ),
        "es" => (
            "Viajes que coinciden",
            format!("El viaje de {name} coincide con el tuyo, {from} – {to}"),
        ),
        _ => ("Trips overlap", format!("{name}'s trip meets yours, {from} – {to}")),
    };
    Message {
        title: title.into(),
        body,
        locale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_text() {
        assert_eq!(connection_request(None, "en", "Alex").body, "Alex wants to connect");
        assert_eq!(
            connection_accepted(Some("de"), "en", "Alex").body,
            "Alex hat Ihre Kontaktanfrage angenommen"
        );
        let d = |s: &str| crate::domain::trips::parse_date("d", s).ok();
        let m = trip_overlap(None, "en", "Alex", d("2027-03-02"), d("2027-03-04"));
        assert_eq!(m.title, "Trips overlap");
        assert_eq!(m.body, "Alex's trip meets yours, 2027-03-02 – 2027-03-04");
    }

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
