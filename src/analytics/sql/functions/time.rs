//! Calendar arithmetic for the time functions: DATE_FORMAT patterns, months, units, EXTRACT.

use super::*;

pub(super) fn date_format(ms: i64, pattern: &str) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let field = match c {
            'y' => Some(if n == 2 { y % 100 } else { y }),
            'M' => Some(mo as i64),
            'd' => Some(d as i64),
            'H' => Some(in_day / 3_600_000),
            'm' => Some(in_day / 60_000 % 60),
            's' => Some(in_day / 1000 % 60),
            'S' => Some(in_day % 1000),
            _ => None,
        };
        match field {
            Some(v) => out.push_str(&format!("{v:0n$}")),
            None if c == '\'' => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    out.push(chars[i]);
                    i += 1;
                }
                i += 1;
                continue;
            }
            None => (0..n).for_each(|_| out.push(c)),
        }
        i += n;
    }
    out
}

pub(super) fn add_months(ms: i64, months: i64) -> i64 {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let total = y * 12 + (m as i64 - 1) + months;
    let (ny, nm) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
    let dim = [
        31,
        if (ny % 4 == 0 && ny % 100 != 0) || ny % 400 == 0 {
            29
        } else {
            28
        },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let nd = d.min(dim[nm as usize - 1]);
    days_from_civil(ny, nm, nd) * 86_400_000 + in_day
}

pub(super) fn unit_ms(unit: TimeUnit) -> Option<i64> {
    Some(match unit {
        TimeUnit::Week => 7 * 86_400_000,
        TimeUnit::Day => 86_400_000,
        TimeUnit::Hour => 3_600_000,
        TimeUnit::Minute => 60_000,
        TimeUnit::Second => 1000,
        TimeUnit::Millisecond => 1,
        _ => return None,
    })
}

pub(super) fn extract(unit: TimeUnit, v: &Value) -> Option<i64> {
    let ms = match v {
        Value::Ts(t) => *t,
        Value::Date(d) => *d as i64 * 86_400_000,
        _ => return None,
    };
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    Some(match unit {
        TimeUnit::Year => y,
        TimeUnit::Quarter => (m as i64 - 1) / 3 + 1,
        TimeUnit::Month => m as i64,
        TimeUnit::Day => d as i64,
        TimeUnit::DayOfWeek => (days + 4).rem_euclid(7) + 1,
        TimeUnit::DayOfYear => days - days_from_civil(y, 1, 1) + 1,
        TimeUnit::Week => {
            // ISO week number.
            let dow = (days + 3).rem_euclid(7); // Monday = 0
            let thursday = days - dow + 3;
            let (ty, _, _) = civil_from_days(thursday);
            (thursday - days_from_civil(ty, 1, 1)) / 7 + 1
        }
        TimeUnit::Hour => in_day / 3_600_000,
        TimeUnit::Minute => in_day / 60_000 % 60,
        TimeUnit::Second => in_day / 1000 % 60,
        TimeUnit::Millisecond => in_day % 1000 + in_day / 1000 % 60 * 1000,
    })
}
