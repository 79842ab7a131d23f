//! A small `strftime` for `strftime_now(fmt)` in chat templates (Llama 3.x
//! templates print today's date with `"%d %b %Y"`). Formats in UTC with the
//! C locale, which is what Python's `datetime.strftime` produces on a UTC
//! host. Supported: `%a %A %b %h %B %c %C %d %D %e %F %H %I %j %m %M %n %p %R
//! %S %t %T %u %w %y %Y %z %Z %%`, and glibc's `-` flag (`%-d`) to drop
//! padding. Anything else is copied through unchanged.

use std::fmt::Write as _;

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tm {
    year: i64,
    /// 1..=12
    month: u32,
    /// 1..=31
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday
    weekday: u32,
    /// 1..=366
    yday: u32,
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// <https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
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

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn tm_from_unix(secs: i64) -> Tm {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let leap_extra = u32::from(month > 2 && is_leap(year));
    Tm {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem / 60 % 60,
        second: rem % 60,
        // 1970-01-01 was a Thursday (4).
        weekday: (days + 4).rem_euclid(7) as u32,
        yday: CUM[(month - 1) as usize] + day + leap_extra,
    }
}

/// Formats `secs` (Unix time, UTC) with a C-locale `strftime` format.
pub(crate) fn format_utc(secs: i64, fmt: &str) -> String {
    let tm = tm_from_unix(secs);
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let no_pad = chars.peek() == Some(&'-');
        if no_pad {
            chars.next();
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            if no_pad {
                out.push('-');
            }
            break;
        };
        let num = |out: &mut String, v: i64, width: usize, pad: char| {
            if no_pad {
                let _ = write!(out, "{v}");
            } else if pad == '0' {
                let _ = write!(out, "{v:0width$}");
            } else {
                let _ = write!(out, "{v:>width$}");
            }
        };
        let hour12 = match tm.hour % 12 {
            0 => 12,
            h => h,
        };
        match spec {
            'a' => out.push_str(&DAYS[tm.weekday as usize][..3]),
            'A' => out.push_str(DAYS[tm.weekday as usize]),
            'b' | 'h' => out.push_str(&MONTHS[(tm.month - 1) as usize][..3]),
            'B' => out.push_str(MONTHS[(tm.month - 1) as usize]),
            'c' => out.push_str(&format_utc(secs, "%a %b %e %H:%M:%S %Y")),
            'C' => num(&mut out, tm.year.div_euclid(100), 2, '0'),
            'd' => num(&mut out, tm.day.into(), 2, '0'),
            'D' => out.push_str(&format_utc(secs, "%m/%d/%y")),
            'e' => num(&mut out, tm.day.into(), 2, ' '),
            'F' => out.push_str(&format_utc(secs, "%Y-%m-%d")),
            'H' => num(&mut out, tm.hour.into(), 2, '0'),
            'I' => num(&mut out, hour12.into(), 2, '0'),
            'j' => num(&mut out, tm.yday.into(), 3, '0'),
            'm' => num(&mut out, tm.month.into(), 2, '0'),
            'M' => num(&mut out, tm.minute.into(), 2, '0'),
            'n' => out.push('\n'),
            'p' => out.push_str(if tm.hour < 12 { "AM" } else { "PM" }),
            'R' => out.push_str(&format_utc(secs, "%H:%M")),
            'S' => num(&mut out, tm.second.into(), 2, '0'),
            't' => out.push('\t'),
            'T' => out.push_str(&format_utc(secs, "%H:%M:%S")),
            'u' => num(
                &mut out,
                if tm.weekday == 0 {
                    7
                } else {
                    tm.weekday.into()
                },
                1,
                '0',
            ),
            'w' => num(&mut out, tm.weekday.into(), 1, '0'),
            'y' => num(&mut out, tm.year.rem_euclid(100), 2, '0'),
            'Y' => {
                let _ = write!(out, "{}", tm.year);
            }
            'z' => out.push_str("+0000"),
            'Z' => out.push_str("UTC"),
            '%' => out.push('%'),
            other => {
                out.push('%');
                if no_pad {
                    out.push('-');
                }
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    /// Expected strings from Python:
    /// `time.strftime(fmt, time.gmtime(secs))` (C locale).
    #[test]
    fn matches_python_gmtime_strftime() {
        let cases = [
            (
                0,
                "%Y-%m-%d %H:%M:%S %a %A %b %B %j %w %u",
                "1970-01-01 00:00:00 Thu Thursday Jan January 001 4 4",
            ),
            (951_782_400, "%d %b %Y %j", "29 Feb 2000 060"),
            (1_721_952_000, "%d %b %Y", "26 Jul 2024"),
            (
                1_735_689_599,
                "%D %T %I %p %y %e|%-d|%-m",
                "12/31/24 23:59:59 11 PM 24 31|31|12",
            ),
            (1_709_251_200, "%F %e %-d %j %C", "2024-03-01  1 1 061 20"),
            (-86_400, "%Y-%m-%d %a", "1969-12-31 Wed"),
            (4_107_542_400, "%c", "Mon Mar  1 00:00:00 2100"),
            (1_700_000_000, "%% %q %", "% %q %"),
        ];
        for (secs, fmt, want) in cases {
            assert_eq!(format_utc(secs, fmt), want, "strftime({fmt:?}, {secs})");
        }
    }
}
