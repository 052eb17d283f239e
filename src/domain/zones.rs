//! Restricted zones: GeoJSON Polygon/MultiPolygon geometry, validated, and point-in-zone tests.

use super::FieldError;
use geo::{Intersects, LineString, MultiPolygon, Point, Polygon, Validation};
use uuid::Uuid;

/// A zone where nobody is indexed.
#[derive(Debug, Clone)]
pub struct Zone {
    pub id: Uuid,
    pub name: String,
    pub shape: MultiPolygon<f64>,
}

impl Zone {
    /// True when the point (lat, lng) is inside the zone or on its boundary.
    pub fn contains(&self, lat: f64, lng: f64) -> bool {
        self.shape.intersects(&Point::new(lng, lat))
    }
}

fn ring(positions: &[geojson::Position], field: &str) -> Result<LineString<f64>, FieldError> {
    if positions.len() < 4 {
        return Err(FieldError::new(field, "a ring needs at least 4 positions"));
    }
    for p in positions {
        let ok = p.len() >= 2
            && p[0].is_finite()
            && p[1].is_finite()
            && (-180.0..=180.0).contains(&p[0])
            && (-90.0..=90.0).contains(&p[1]);
        if !ok {
            return Err(FieldError::new(
                field,
                "positions are [lng, lat] within [-180, 180] and [-90, 90]",
            ));
        }
    }
    let (first, last) = (&positions[0], &positions[positions.len() - 1]);
    if first[0] != last[0] || first[1] != last[1] {
        return Err(FieldError::new(
            field,
            "a ring must be closed (first position = last position)",
        ));
    }
    Ok(LineString::from(
        positions.iter().map(|p| (p[0], p[1])).collect::<Vec<_>>(),
    ))
}

fn polygon(rings: &[Vec<geojson::Position>], field: &str) -> Result<Polygon<f64>, FieldError> {
    let Some((outer, inner)) = rings.split_first() else {
        return Err(FieldError::new(field, "a polygon needs an exterior ring"));
    };
    let exterior = ring(outer, field)?;
    let interiors = inner.iter().map(|r| ring(r, field)).collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon::new(exterior, interiors))
}

/// Parses and validates GeoJSON Polygon or MultiPolygon geometry: closed rings of at least four
/// positions, coordinates in range, no self-intersection.
pub fn parse_geometry(value: &serde_json::Value) -> Result<MultiPolygon<f64>, FieldError> {
    let field = "geometry";
    let geometry: geojson::Geometry = serde_json::from_value(value.clone())
        .map_err(|_| FieldError::new(field, "must be GeoJSON geometry of type Polygon or MultiPolygon"))?;
    let shape = match &geometry.value {
        geojson::GeometryValue::Polygon { coordinates: rings } => MultiPolygon(vec![polygon(rings, field)?]),
        geojson::GeometryValue::MultiPolygon { coordinates: polys } => {
            if polys.is_empty() {
                return Err(FieldError::new(field, "a MultiPolygon needs at least one polygon"));
            }
            MultiPolygon(polys.iter().map(|p| polygon(p, field)).collect::<Result<Vec<_>, _>>()?)
        }
        _ => return Err(FieldError::new(field, "must be of type Polygon or MultiPolygon")),
    };
    if !shape.is_valid() {
        return Err(FieldError::new(
            field,
            "rings must not self-intersect and polygons must not overlap",
        ));
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn valid_polygons_and_multipolygons_contain_their_points() {
        let square =
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]]});
        let shape = parse_geometry(&square).expect("valid");
        let z = Zone {
            id: Uuid::nil(),
            name: "sq".into(),
            shape,
        };
        assert!(z.contains(0.5, 0.5));
        assert!(!z.contains(1.5, 0.5));
        let multi = json!({"type": "MultiPolygon", "coordinates": [
            [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]],
            [[[10.0, 10.0], [11.0, 10.0], [11.0, 11.0], [10.0, 10.0]]]
        ]});
        let z = Zone {
            id: Uuid::nil(),
            name: "m".into(),
            shape: parse_geometry(&multi).expect("valid"),
        };
        assert!(z.contains(10.2, 10.8));
    }

    #[test]
    fn invalid_rings_are_refused() {
        for bad in [
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]}), // unclosed
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]}), // 3 positions
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [200.0, 0.0], [1.0, 1.0], [0.0, 0.0]]]}), // out of range
            json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]}), // bow tie
            json!({"type": "Point", "coordinates": [0.0, 0.0]}),
            json!({"type": "Polygon", "coordinates": "nope"}),
            json!({"type": "Polygon", "coordinates": []}),
        ] {
            assert!(parse_geometry(&bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(coords in prop::collection::vec(prop::collection::vec((prop::num::f64::ANY, prop::num::f64::ANY), 0..8), 0..3)) {
            let rings: Vec<Vec<[f64; 2]>> = coords.iter().map(|r| r.iter().map(|(a, b)| [*a, *b]).collect()).collect();
            let _ = parse_geometry(&json!({"type": "Polygon", "coordinates": rings}));
            let _ = parse_geometry(&json!({"type": "MultiPolygon", "coordinates": [rings]}));
        }
    }
}
