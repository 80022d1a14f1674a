//! Sizes: a number of bytes or a number with a unit, `"256MiB"`, `"2GB"`, `"512 B"`.

const UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("kB", 1000),
    ("MB", 1000_u64.pow(2)),
    ("GB", 1000_u64.pow(3)),
    ("TB", 1000_u64.pow(4)),
    ("KiB", 1024),
    ("MiB", 1024_u64.pow(2)),
    ("GiB", 1024_u64.pow(3)),
    ("TiB", 1024_u64.pow(4)),
];

/// Parses `"1048576"`, `"512B"`, `"5MiB"`, `"2GB"` or `"256 MiB"` into bytes. Decimal units
/// (kB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB, GiB, TiB) powers of 1024;
/// units are matched without regard to case. The number must be a whole number.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit = unit.trim_start();
    let multiplier = if unit.is_empty() {
        Some(1)
    } else {
        UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|&(_, multiplier)| multiplier)
    };
    let (Some(multiplier), false) = (multiplier, number.is_empty()) else {
        return Err(format!(
            "`{s}` is not a size: write a whole number of bytes, or one with a unit \
             (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. \"256MiB\""
        ));
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("`{s}` is too large (at most {} bytes)", u64::MAX))
}

/// Formats bytes in the unit that writes them exactly with the smallest number:
/// `268435456` → `"256MiB"`, `2000000000` → `"2GB"`, `1000` → `"1kB"`, `1023` → `"1023B"`.
pub fn format_size(bytes: u64) -> String {
    let (unit, multiplier) = UNITS
        .iter()
        .filter(|(_, multiplier)| bytes % multiplier == 0)
        .min_by_key(|(_, multiplier)| bytes / multiplier)
        .copied()
        .unwrap_or(("B", 1));
    format!("{}{unit}", bytes / multiplier)
}
