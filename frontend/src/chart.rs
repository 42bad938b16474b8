//! The arithmetic of the dashboard's SVG charts: linear scales, round axis ticks, line paths
//! and bar slots. Pure; the components only turn these numbers into SVG elements.

/// A linear map from a domain of values to a range of pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub domain: (f64, f64),
    pub range: (f64, f64),
}

impl Scale {
    pub fn new(domain: (f64, f64), range: (f64, f64)) -> Scale {
        Scale { domain, range }
    }

    /// The pixel of `value`; a flat domain maps to the middle of the range.
    pub fn map(&self, value: f64) -> f64 {
        let (d0, d1) = self.domain;
        let (r0, r1) = self.range;
        if (d1 - d0).abs() < f64::EPSILON {
            return (r0 + r1) / 2.0;
        }
        r0 + (value - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// About `count` round tick values (1, 2 or 5 × a power of ten apart) covering `0..=max`;
/// the last tick is at or above `max`, so it can be the axis top.
pub fn ticks(max: f64, count: usize) -> Vec<f64> {
    let count = count.max(1);
    if !max.is_finite() || max <= 0.0 {
        return vec![0.0, 1.0];
    }
    let raw = max / count as f64;
    let magnitude = 10_f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude);
    let steps = (max / step).ceil() as usize;
    (0..=steps.max(1)).map(|n| n as f64 * step).collect()
}

/// An SVG path through `points`, already in pixels: `M x y L x y …`.
pub fn line_path(points: &[(f64, f64)]) -> String {
    let mut path = String::new();
    for (n, (x, y)) in points.iter().enumerate() {
        let command = if n == 0 { 'M' } else { 'L' };
        if !path.is_empty() {
            path.push(' ');
        }
        path.push_str(&format!("{command}{x:.1} {y:.1}"));
    }
    path
}

/// The left edge and width of bar `index` of `count` bars spread over `left..right`, with a
/// gap of a fifth of a slot between bars.
pub fn bar_slot(index: usize, count: usize, left: f64, right: f64) -> (f64, f64) {
    let slot = (right - left) / count.max(1) as f64;
    let gap = slot * 0.2;
    (left + index as f64 * slot + gap / 2.0, slot - gap)
}

/// A short label for an axis value: `1.5k`, `2M`, `0.25`.
pub fn compact(value: f64) -> String {
    let magnitude = value.abs();
    let (scaled, suffix) = if magnitude >= 1e9 {
        (value / 1e9, "B")
    } else if magnitude >= 1e6 {
        (value / 1e6, "M")
    } else if magnitude >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = if scaled == scaled.trunc() {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 10.0 {
        format!("{scaled:.1}")
    } else {
        let text = format!("{scaled:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn scales_map_linearly_and_flip_for_svg_y() {
        let y = Scale::new((0.0, 100.0), (200.0, 0.0));
        assert_eq!(y.map(0.0), 200.0);
        assert_eq!(y.map(25.0), 150.0);
        assert_eq!(Scale::new((5.0, 5.0), (0.0, 10.0)).map(5.0), 5.0);
    }

    #[test]
    fn ticks_are_round_and_reach_the_max() {
        assert_eq!(ticks(100.0, 4), vec![0.0, 50.0, 100.0]);
        assert_eq!(ticks(7.0, 4), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(0.0, 4), vec![0.0, 1.0]);
        let small = ticks(0.003, 3);
        assert!(small.last().is_some_and(|top| *top >= 0.003));
    }

    #[test]
    fn paths_slots_and_labels() {
        assert_eq!(line_path(&[(0.0, 10.0), (5.0, 2.26)]), "M0.0 10.0 L5.0 2.3");
        assert_eq!(line_path(&[]), "");
        assert_eq!(bar_slot(1, 4, 0.0, 100.0), (27.5, 20.0));
        assert_eq!(compact(1500.0), "1.5k");
        assert_eq!(compact(2_000_000.0), "2M");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(12.0), "12");
    }
}
