//! The time zones clients commonly send in `dateTimeTimeZone` (Windows and
//! IANA names), with the US and EU daylight-saving rules, to turn a local
//! wall-clock time into UTC. Unknown zones are taken as UTC.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};

#[derive(Clone, Copy)]
enum Dst {
    None,
    Us,
    Eu,
}

fn zone(name: &str) -> Option<(i64, Dst)> {
    let n = name.trim();
    let z = match n {
        "UTC" | "Etc/UTC" | "Etc/GMT" | "Coordinated Universal Time" => (0, Dst::None),
        "Pacific Standard Time" | "America/Los_Angeles" => (-480, Dst::Us),
        "Mountain Standard Time" | "America/Denver" => (-420, Dst::Us),
        "Central Standard Time" | "America/Chicago" => (-360, Dst::Us),
        "Eastern Standard Time" | "America/New_York" | "America/Toronto" => (-300, Dst::Us),
        "GMT Standard Time" | "Europe/London" | "Europe/Dublin" | "Europe/Lisbon" => (0, Dst::Eu),
        "W. Europe Standard Time"
        | "Romance Standard Time"
        | "Central Europe Standard Time"
        | "Central European Standard Time"
        | "Europe/Berlin"
        | "Europe/Amsterdam"
        | "Europe/Rome"
        | "Europe/Vienna"
        | "Europe/Stockholm"
        | "Europe/Paris"
        | "Europe/Madrid"
        | "Europe/Brussels"
        | "Europe/Copenhagen"
        | "Europe/Prague"
        | "Europe/Budapest"
        | "Europe/Warsaw"
        | "Europe/Zurich" => (60, Dst::Eu),
        "Tokyo Standard Time" | "Asia/Tokyo" => (540, Dst::None),
        "India Standard Time" | "Asia/Kolkata" => (330, Dst::None),
        "China Standard Time" | "Asia/Shanghai" => (480, Dst::None),
        "Singapore Standard Time" | "Asia/Singapore" => (480, Dst::None),
        "E. South America Standard Time" | "America/Sao_Paulo" => (-180, Dst::None),
        _ => return None,
    };
    Some(z)
}

/// The `n`th (1-based) given weekday of a month, or the last one with `n == 0`.
fn nth_weekday(year: i32, month: u32, wd: Weekday, n: u32) -> Option<NaiveDate> {
    if n == 0 {
        let next = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)?
        };
        let mut d = next.pred_opt()?;
        while d.weekday() != wd {
            d = d.pred_opt()?;
        }
        return Some(d);
    }
    NaiveDate::from_weekday_of_month_opt(year, month, wd, n as u8)
}

/// The UTC instant of a wall-clock time in the named zone.
pub(crate) fn to_utc(local: NaiveDateTime, name: &str) -> NaiveDateTime {
    let Some((std, dst)) = zone(name) else {
        return local;
    };
    let standard = local - Duration::minutes(std);
    let daylight = standard - Duration::hours(1);
    let y = local.year();
    let in_dst = match dst {
        Dst::None => false,
        Dst::Us => {
            // 02:00 local on the second Sunday of March to 02:00 local on the first Sunday of November.
            match (
                nth_weekday(y, 3, Weekday::Sun, 2).and_then(|d| d.and_hms_opt(2, 0, 0)),
                nth_weekday(y, 11, Weekday::Sun, 1).and_then(|d| d.and_hms_opt(2, 0, 0)),
            ) {
                (Some(s), Some(e)) => local >= s && local < e,
                _ => false,
            }
        }
        Dst::Eu => {
            // 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of October.
            match (
                nth_weekday(y, 3, Weekday::Sun, 0).and_then(|d| d.and_hms_opt(1, 0, 0)),
                nth_weekday(y, 10, Weekday::Sun, 0).and_then(|d| d.and_hms_opt(1, 0, 0)),
            ) {
                (Some(s), Some(e)) => daylight >= s && daylight < e,
                _ => false,
            }
        }
    };
    if in_dst { daylight } else { standard }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap()
    }

    #[test]
    fn windows_and_iana_zones_with_daylight_saving() {
        assert_eq!(
            to_utc(t("2026-01-15T09:00"), "Pacific Standard Time"),
            t("2026-01-15T17:00")
        );
        assert_eq!(
            to_utc(t("2026-07-15T09:00"), "America/Los_Angeles"),
            t("2026-07-15T16:00")
        );
        // US 2026: DST from 8 March to 1 November.
        assert_eq!(
            to_utc(t("2026-03-07T09:00"), "Eastern Standard Time"),
            t("2026-03-07T14:00")
        );
        assert_eq!(
            to_utc(t("2026-03-09T09:00"), "Eastern Standard Time"),
            t("2026-03-09T13:00")
        );
        // EU 2026: DST from 29 March to 25 October.
        assert_eq!(
            to_utc(t("2026-03-28T10:00"), "W. Europe Standard Time"),
            t("2026-03-28T09:00")
        );
        assert_eq!(
            to_utc(t("2026-03-30T10:00"), "Europe/Paris"),
            t("2026-03-30T08:00")
        );
        assert_eq!(
            to_utc(t("2026-10-26T10:00"), "GMT Standard Time"),
            t("2026-10-26T10:00")
        );
        assert_eq!(
            to_utc(t("2026-06-01T10:00"), "Europe/London"),
            t("2026-06-01T09:00")
        );
        assert_eq!(
            to_utc(t("2026-06-01T10:00"), "India Standard Time"),
            t("2026-06-01T04:30")
        );
        assert_eq!(
            to_utc(t("2026-06-01T10:00"), "Mars/Olympus"),
            t("2026-06-01T10:00")
        );
    }
}
