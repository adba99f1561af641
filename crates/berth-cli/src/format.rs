//! How things look: docker's tables (tabwriter, 3-space padding, minimum width 10), sizes and
//! durations as Docker's go-units prints them, timestamps, and `--format` dispatch (table, json,
//! or a template). Pure functions only: no I/O beyond the writer handed in.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::template::Template;

/// go-units' HumanSizeWithPrecision: decimal units, `%.*g`.
pub fn human_size_prec(size: f64, prec: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i < UNITS.len() - 1 {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(s, prec), UNITS[i])
}

/// go-units' HumanSize (precision 4).
pub fn human_size(size: i64) -> String {
    human_size_prec(size as f64, 4)
}

/// Go's `%.{prec}g`.
pub fn go_g(x: f64, prec: usize) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if !x.is_finite() {
        return format!("{x}");
    }
    let prec = prec.max(1);
    // Exponent after rounding to `prec` significant digits.
    let sci = format!("{:.*e}", prec - 1, x);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let mant = trim_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, x)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// go-units' HumanDuration.
pub fn human_duration(secs: f64) -> String {
    let seconds = secs as i64;
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = (secs / 60.0) as i64;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (secs / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (secs / 3600.0) as i64 / 24 / 365)
}

/// Seconds since the epoch, as a float.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// "5 minutes ago" for a unix time.
pub fn ago(unix: i64) -> String {
    if unix <= 0 {
        return "N/A".into();
    }
    format!("{} ago", human_duration((now() - unix as f64).max(0.0)))
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn split_time(unix: i64) -> (i64, u32, u32, i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    let rem = unix.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Go's `time.Time.String()` in UTC: "2024-01-02 03:04:05 +0000 UTC".
pub fn go_time_string(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = split_time(unix);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000 UTC")
}

/// Go's `time.Time.String()` of an RFC 3339 timestamp from the API, nanoseconds kept with
/// trailing zeros dropped: "2026-11-22 05:31:25.98062168 +0000 UTC" (network ls's CreatedAt).
/// An unparsable timestamp is returned as is.
pub fn go_time_string_rfc3339(ts: &str) -> String {
    let Some((unix, nanos)) = parse_rfc3339(ts) else {
        return ts.to_string();
    };
    let (y, mo, d, h, mi, s) = split_time(unix);
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{frac} +0000 UTC")
}

/// The "natural" order docker's CLI sorts names and port lines by (fvbommel/sortorder's
/// NaturalLess): runs of digits compare as numbers, everything else bytewise, digits first.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (nz_a, nz_b) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (la, lb) = (i - nz_a, j - nz_b);
        if la != lb {
            return la.cmp(&lb);
        }
        let ord = a[nz_a..i].cmp(&b[nz_b..j]);
        if ord != Ordering::Equal {
            return ord;
        }
        if nz_a != nz_b {
            return nz_a.cmp(&nz_b);
        }
    }
    // Identical so far and one has ended: the longer sorts last.
    a.len().cmp(&b.len())
}

/// Go's `time.ANSIC` in UTC: "Thu May  7 21:09:36 2026" (docker version's "Built").
pub fn ansic(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = split_time(unix);
    let wd = DAYS[unix.div_euclid(86_400).rem_euclid(7) as usize];
    let m = MONTHS[(mo as usize).clamp(1, 12) - 1];
    format!("{wd} {m} {d:>2} {h:02}:{mi:02}:{s:02} {y}")
}

/// RFC 3339 with nanoseconds, fixed width: "2024-01-02T03:04:05.000000000Z".
pub fn rfc3339_nano(unix: i64, nanos: u32) -> String {
    let (y, mo, d, h, mi, s) = split_time(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{nanos:09}Z")
}

/// Parses an RFC 3339 timestamp ("2024-01-02T03:04:05.123Z", offsets allowed) → (unix, nanos).
pub fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut nanos: u32 = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        rest = &r[digits.len()..];
        let mut padded = digits.chars().take(9).collect::<String>();
        while padded.len() < 9 {
            padded.push('0');
        }
        nanos = padded.parse().ok()?;
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        r if (r.starts_with('+') || r.starts_with('-')) && r.len() >= 6 => {
            let sign = if r.starts_with('-') { -1 } else { 1 };
            let oh: i64 = r.get(1..3)?.parse().ok()?;
            let om: i64 = r.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let unix = days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some((unix, nanos))
}

/// Go durations as the CLI takes them ("1m30s", "500ms", "2h") → seconds.
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        if num.is_empty() {
            return None;
        }
        rest = &rest[num.len()..];
        let unit: String = rest
            .chars()
            .take_while(|c| !c.is_ascii_digit() && *c != '.')
            .collect();
        rest = &rest[unit.len()..];
        let n: f64 = num.parse().ok()?;
        let mult = match unit.as_str() {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mult;
    }
    Some(total)
}

/// `--since`/`--until` values: a unix time (with fraction), an RFC 3339 time, or a Go duration
/// meaning "that long ago". Returned as the string the API takes ("seconds[.nanos]").
pub fn api_timestamp(v: &str) -> Option<String> {
    if v.is_empty() {
        return None;
    }
    if v.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Some(v.to_string());
    }
    if let Some((u, n)) = parse_rfc3339(v) {
        return Some(format!("{u}.{n:09}"));
    }
    if let Some((u, n)) = parse_rfc3339(&format!("{v}T00:00:00Z")) {
        return Some(format!("{u}.{n:09}"));
    }
    let d = parse_go_duration(v)?;
    let t = now() - d;
    Some(format!("{:.9}", t))
}

/// Docker's `Ellipsis`: at most `max` characters, the last one "…" when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote` for the common cases.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// "sha256:abcdef..." → the first 12 hex characters.
pub fn short_id(id: &str) -> String {
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// Writes rows as docker's tables: Go's tabwriter with minimum cell width 10 and 3 spaces of
/// padding (this crate adds the padding after the minimum width, hence 7 + 3).
pub fn write_table(out: &mut dyn Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(7).padding(3);
    for r in rows {
        writeln!(tw, "{}", r.join("\t"))?;
    }
    tw.flush()?;
    let buf = tw
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    out.write_all(&buf)
}

/// How a listing is printed.
pub enum Output {
    /// The default table with these columns (field name, header).
    Table,
    /// One JSON object per line.
    Json,
    /// A template, with a header line when it began with `table`.
    Template { tmpl: Template, table: bool },
}

impl Output {
    /// Parses `--format`: "", "table", "json", "table TEMPLATE", or a template.
    pub fn parse(format: Option<&str>) -> anyhow::Result<Self> {
        let f = format.unwrap_or("").trim();
        match f {
            "" | "table" => Ok(Output::Table),
            "json" => Ok(Output::Json),
            _ => {
                let (table, body) = match f.strip_prefix("table") {
                    Some(rest) if rest.starts_with([' ', '\t']) || rest.starts_with("\\t") => {
                        (true, rest)
                    }
                    _ => (false, f),
                };
                let body = body
                    .trim_matches(' ')
                    .replace("\\t", "\t")
                    .replace("\\n", "\n");
                Ok(Output::Template {
                    tmpl: Template::parse(&body)?,
                    table,
                })
            }
        }
    }

    /// Prints rows (JSON objects of docker's field names) with the default `columns`
    /// ((field, header) pairs) for the table form.
    pub fn print(
        &self,
        out: &mut dyn Write,
        rows: &[Value],
        columns: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        match self {
            Output::Table => {
                let mut table = vec![columns.iter().map(|(_, h)| h.to_string()).collect()];
                for r in rows {
                    table.push(
                        columns
                            .iter()
                            .map(|(f, _)| r.get(*f).map(value_text).unwrap_or_default())
                            .collect(),
                    );
                }
                write_table(out, &table)?;
            }
            Output::Json => {
                for r in rows {
                    writeln!(out, "{}", serde_json::to_string(r)?)?;
                }
            }
            Output::Template { tmpl, table } => {
                if *table {
                    let mut lines = Vec::new();
                    let head = tmpl.header(headers);
                    lines.push(head);
                    for r in rows {
                        lines.push(tmpl.render(r)?);
                    }
                    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(7).padding(3);
                    for l in lines {
                        writeln!(tw, "{l}")?;
                    }
                    tw.flush()?;
                    out.write_all(&tw.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
                } else {
                    for r in rows {
                        writeln!(out, "{}", tmpl.render(r)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A JSON value as a table cell or template output: strings bare, the rest as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(value_text).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", value_text(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

/// Re-indents raw JSON with 4 spaces (docker inspect's look) keeping the key order it came in.
pub fn indent_json(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let s = String::from_utf8_lossy(raw);
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let nl = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("    ");
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                // Empty containers stay "{}" / "[]".
                let mut j = i + 1;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let close = if c == '{' { '}' } else { ']' };
                if j < chars.len() && chars[j] == close {
                    out.push(c);
                    out.push(close);
                    i = j + 1;
                    continue;
                }
                out.push(c);
                depth += 1;
                nl(&mut out, depth);
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                nl(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(',');
                nl(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size_prec(0.0, 3), "0B");
        assert_eq!(human_size_prec(999.0, 3), "999B");
        assert_eq!(human_size_prec(1000.0, 3), "1kB");
        assert_eq!(human_size_prec(4_260_000.0, 3), "4.26MB");
        assert_eq!(human_size_prec(1_980_000.0, 3), "1.98MB");
        assert_eq!(human_size_prec(123_456.0, 3), "123kB");
        assert_eq!(human_size_prec(1_234_567_890.0, 3), "1.23GB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(12), "12B");
        assert_eq!(go_g(999.5, 3), "1e+03");
        assert_eq!(go_g(0.0001234, 3), "0.000123");
        assert_eq!(go_g(10.0, 3), "10");
    }

    #[test]
    fn durations_like_go_units() {
        assert_eq!(human_duration(0.3), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(3.0), "3 seconds");
        assert_eq!(human_duration(65.0), "About a minute");
        assert_eq!(human_duration(600.0), "10 minutes");
        assert_eq!(human_duration(3600.0 * 1.2), "About an hour");
        assert_eq!(human_duration(3600.0 * 5.0), "5 hours");
        assert_eq!(human_duration(86400.0 * 3.0), "3 days");
        assert_eq!(human_duration(86400.0 * 20.0), "2 weeks");
        assert_eq!(human_duration(86400.0 * 90.0), "3 months");
        assert_eq!(human_duration(86400.0 * 800.0), "2 years");
    }

    #[test]
    fn times() {
        assert_eq!(go_time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            go_time_string(1_700_000_000),
            "2023-11-14 22:13:20 +0000 UTC"
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.5Z"),
            Some((1_700_000_000, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Some((1_700_000_000, 0))
        );
        assert_eq!(
            parse_rfc3339("0001-01-01T00:00:00Z").map(|t| t.0 < 0),
            Some(true)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        assert_eq!(ansic(1_778_188_176), "Thu May  7 21:09:36 2026");
        assert_eq!(parse_rfc3339("2023-13-14T22:13:20Z"), None);
        assert_eq!(
            rfc3339_nano(1_700_000_000, 5),
            "2023-11-14T22:13:20.000000005Z"
        );
        for d in [-1000i64, 0, 1, 19_000, 738_000] {
            let (y, m, dd) = civil(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1m30s"), Some(90.0));
        assert_eq!(parse_go_duration("500ms"), Some(0.5));
        assert_eq!(parse_go_duration("2h"), Some(7200.0));
        assert_eq!(parse_go_duration("0"), Some(0.0));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("x"), None);
        assert_eq!(api_timestamp("1700000000"), Some("1700000000".into()));
        assert_eq!(
            api_timestamp("2023-11-14T22:13:20Z"),
            Some("1700000000.000000000".into())
        );
        assert!(api_timestamp("10m").is_some());
        assert_eq!(api_timestamp("bogus"), None);
    }

    const ODD: &[&str] = &[
        "",
        "é",
        "2023-11-14T22:13:2é",
        "2023-11-14T22:13:20.é",
        "2023-11-14T22:13:20+é",
        "1é",
        "{{",
        "}}",
        "{{.}}",
        "::",
        "[",
        "[::1]",
        "-",
        "1-",
        "99999999999999999999m",
        "1e400",
        "0x10",
        "µs",
        "1µs",
        ".",
        "..",
        "{{json}}",
        "{{index}}",
        "table",
        "table {{",
    ];

    #[test]
    fn parsers_never_panic() {
        for s in ODD {
            let _ = parse_rfc3339(s);
            let _ = parse_go_duration(s);
            let _ = api_timestamp(s);
            let _ = ellipsis(s, 1);
            let _ = short_id(s);
            if let Ok(o) = Output::parse(Some(s)) {
                let _ = o.print(&mut Vec::new(), &[json!({"a": 1})], &[("a", "A")], &[]);
            }
            let _ = indent_json(s.as_bytes());
        }
        let _ = human_duration(f64::MAX);
        let _ = human_size_prec(f64::MAX, 3);
        let _ = go_time_string(i64::MAX);
        let _ = go_time_string(i64::MIN / 2);
        let _ = ago(i64::MAX);
    }

    #[test]
    fn strings() {
        assert_eq!(ellipsis("abcdef", 4), "abc…");
        assert_eq!(ellipsis("abc", 4), "abc");
        assert_eq!(go_quote("sh -c 'x'\n"), "\"sh -c 'x'\\n\"");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
    }

    #[test]
    fn tables_pad_like_docker() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &[
                vec!["CONTAINER ID".into(), "IMAGE".into(), "NAMES".into()],
                vec!["0123456789ab".into(), "busybox".into(), "x".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CONTAINER ID   IMAGE     NAMES\n0123456789ab   busybox   x\n"
        );
    }

    #[test]
    fn output_forms() {
        let rows = vec![json!({"ID": "abc", "Names": "n1"})];
        let cols = [("ID", "CONTAINER ID"), ("Names", "NAMES")];
        let mut out = Vec::new();
        Output::parse(Some("json"))
            .unwrap()
            .print(&mut out, &rows, &cols, &cols)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"n1\"}\n"
        );
        let mut out = Vec::new();
        Output::parse(Some("{{.ID}}\\t{{.Names}}"))
            .unwrap()
            .print(&mut out, &rows, &cols, &cols)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "abc\tn1\n");
        let mut out = Vec::new();
        Output::parse(Some("table {{.ID}}\\t{{.Names}}"))
            .unwrap()
            .print(&mut out, &rows, &cols, &cols)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "CONTAINER ID   NAMES\nabc            n1\n"
        );
    }

    #[test]
    fn indents_keeping_order() {
        let raw = br#"[{"Id":"x","Args":[],"Config":{"B":1,"A":"a,b:{}"}}]"#;
        assert_eq!(
            indent_json(raw),
            "[\n    {\n        \"Id\": \"x\",\n        \"Args\": [],\n        \"Config\": {\n            \"B\": 1,\n            \"A\": \"a,b:{}\"\n        }\n    }\n]"
        );
    }

    #[test]
    fn natural_order_like_sortorder() {
        use std::cmp::Ordering::*;
        assert_eq!(natural_cmp("n2", "n10"), Less);
        assert_eq!(natural_cmp("bridge", "host"), Less);
        assert_eq!(natural_cmp("a", "a1"), Less);
        assert_eq!(natural_cmp("1a", "a"), Less);
        assert_eq!(natural_cmp("x01", "x1"), Greater);
        assert_eq!(natural_cmp("x1", "x1"), Equal);
        assert_eq!(
            natural_cmp("80/tcp -> 0.0.0.0:8000", "80/tcp -> [::]:8000"),
            Less
        );
        assert_eq!(
            natural_cmp("443/tcp -> 0.0.0.0:1", "80/tcp -> 0.0.0.0:1"),
            Greater
        );
    }

    #[test]
    fn go_time_of_api_timestamps() {
        assert_eq!(
            go_time_string_rfc3339("2026-11-22T05:31:25.98062168Z"),
            "2026-11-22 05:31:25.98062168 +0000 UTC"
        );
        assert_eq!(
            go_time_string_rfc3339("2026-11-22T05:31:25Z"),
            "2026-11-22 05:31:25 +0000 UTC"
        );
        assert_eq!(go_time_string_rfc3339("bogus"), "bogus");
    }
}
