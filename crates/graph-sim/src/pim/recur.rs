//! Recurrence expansion for Outlook's `patternedRecurrence` (events and To Do
//! tasks): which dates a series has, in order, as Exchange computes them.

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde_json::Value;

use crate::error::{GraphError, GraphResult};

/// A parsed `patternedRecurrence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    pub kind: PatternKind,
    pub interval: u32,
    pub days_of_week: Vec<Weekday>,
    pub day_of_month: u32,
    pub month: u32,
    pub index: WeekIndex,
    pub first_day_of_week: Weekday,
    pub start: NaiveDate,
    pub end: RangeEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    Daily,
    Weekly,
    AbsoluteMonthly,
    RelativeMonthly,
    AbsoluteYearly,
    RelativeYearly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeekIndex {
    First,
    Second,
    Third,
    Fourth,
    Last,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeEnd {
    EndDate(NaiveDate),
    NoEnd,
    Numbered(u32),
}

/// Series without an end are expanded at most this far (Outlook itself caps
/// expansion; a backup never needs more).
const MAX_OCCURRENCES: usize = 5000;
/// Scanning stops this many days past the start whatever happens.
const MAX_SCAN_DAYS: i64 = 366 * 30;

pub fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

fn bad(msg: &str) -> GraphError {
    GraphError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "ErrorInvalidRecurrence",
        msg.to_string(),
    )
}

fn date_field(v: &Value, name: &str) -> GraphResult<Option<NaiveDate>> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() || s == "0001-01-01" => Ok(None),
        Some(Value::String(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .filter(|d| (1601..=4500).contains(&d.year()))
            .map(Some)
            .ok_or_else(|| bad(&format!("The value '{s}' of {name} is not a valid date."))),
        Some(_) => Err(bad(&format!("{name} must be a date string."))),
    }
}

fn int_field(v: &Value, name: &str) -> u32 {
    v.get(name)
        .and_then(Value::as_u64)
        .map(|n| n.min(u32::MAX as u64) as u32)
        .unwrap_or(0)
}

impl Recurrence {
    /// Parses a `patternedRecurrence` as a client sent it; errors are Graph's 400s.
    pub fn parse(v: &Value) -> GraphResult<Recurrence> {
        let pattern = v
            .get("pattern")
            .filter(|p| p.is_object())
            .ok_or_else(|| bad("The recurrence pattern is missing."))?;
        let range = v
            .get("range")
            .filter(|p| p.is_object())
            .ok_or_else(|| bad("The recurrence range is missing."))?;
        let kind = match pattern.get("type").and_then(Value::as_str).unwrap_or("") {
            "daily" => PatternKind::Daily,
            "weekly" => PatternKind::Weekly,
            "absoluteMonthly" => PatternKind::AbsoluteMonthly,
            "relativeMonthly" => PatternKind::RelativeMonthly,
            "absoluteYearly" => PatternKind::AbsoluteYearly,
            "relativeYearly" => PatternKind::RelativeYearly,
            other => return Err(bad(&format!("Unknown recurrence pattern type '{other}'."))),
        };
        let interval = int_field(pattern, "interval").max(1);
        let mut days_of_week = Vec::new();
        if let Some(arr) = pattern.get("daysOfWeek").and_then(Value::as_array) {
            for d in arr {
                let d = d
                    .as_str()
                    .and_then(parse_weekday)
                    .ok_or_else(|| bad("Invalid day of week in recurrence pattern."))?;
                if !days_of_week.contains(&d) {
                    days_of_week.push(d);
                }
            }
        }
        let first_day_of_week = pattern
            .get("firstDayOfWeek")
            .and_then(Value::as_str)
            .and_then(parse_weekday)
            .unwrap_or(Weekday::Sun);
        let index = match pattern
            .get("index")
            .and_then(Value::as_str)
            .unwrap_or("first")
        {
            "first" => WeekIndex::First,
            "second" => WeekIndex::Second,
            "third" => WeekIndex::Third,
            "fourth" => WeekIndex::Fourth,
            "last" => WeekIndex::Last,
            other => return Err(bad(&format!("Unknown week index '{other}'."))),
        };
        let day_of_month = int_field(pattern, "dayOfMonth");
        let month = int_field(pattern, "month");
        match kind {
            PatternKind::Weekly | PatternKind::RelativeMonthly | PatternKind::RelativeYearly
                if days_of_week.is_empty() =>
            {
                return Err(bad("daysOfWeek is required for this recurrence pattern."));
            }
            PatternKind::AbsoluteMonthly | PatternKind::AbsoluteYearly
                if !(1..=31).contains(&day_of_month) =>
            {
                return Err(bad("dayOfMonth must be between 1 and 31."));
            }
            _ => {}
        }
        if matches!(
            kind,
            PatternKind::AbsoluteYearly | PatternKind::RelativeYearly
        ) && !(1..=12).contains(&month)
        {
            return Err(bad("month must be between 1 and 12."));
        }
        let start = date_field(range, "startDate")?
            .ok_or_else(|| bad("The range startDate is missing."))?;
        let end = match range.get("type").and_then(Value::as_str).unwrap_or("") {
            "endDate" => {
                let e = date_field(range, "endDate")?
                    .ok_or_else(|| bad("The range endDate is missing."))?;
                if e < start {
                    return Err(bad("The range endDate is before its startDate."));
                }
                RangeEnd::EndDate(e)
            }
            "noEnd" => RangeEnd::NoEnd,
            "numbered" => {
                let n = int_field(range, "numberOfOccurrences");
                if n == 0 {
                    return Err(bad("numberOfOccurrences must be positive."));
                }
                RangeEnd::Numbered(n)
            }
            other => return Err(bad(&format!("Unknown recurrence range type '{other}'."))),
        };
        Ok(Recurrence {
            kind,
            interval,
            days_of_week,
            day_of_month,
            month,
            index,
            first_day_of_week,
            start,
            end,
        })
    }

    fn matches(&self, d: NaiveDate) -> bool {
        let interval = self.interval as i64;
        match self.kind {
            PatternKind::Daily => (d - self.start).num_days() % interval == 0,
            PatternKind::Weekly => {
                if !self.days_of_week.contains(&d.weekday()) {
                    return false;
                }
                let weeks = (week_start(d, self.first_day_of_week)
                    - week_start(self.start, self.first_day_of_week))
                .num_days()
                    / 7;
                weeks % interval == 0
            }
            PatternKind::AbsoluteMonthly => {
                months_between(self.start, d) % interval == 0
                    && d.day() == self.day_of_month.min(days_in_month(d))
            }
            PatternKind::RelativeMonthly => {
                months_between(self.start, d) % interval == 0 && self.relative_day(d)
            }
            PatternKind::AbsoluteYearly => {
                (d.year() - self.start.year()) as i64 % interval == 0
                    && d.month() == self.month
                    && d.day() == self.day_of_month.min(days_in_month(d))
            }
            PatternKind::RelativeYearly => {
                (d.year() - self.start.year()) as i64 % interval == 0
                    && d.month() == self.month
                    && self.relative_day(d)
            }
        }
    }

    /// Relative patterns: the first..fourth or last of the given weekday(s) in the month.
    fn relative_day(&self, d: NaiveDate) -> bool {
        if !self.days_of_week.contains(&d.weekday()) {
            return false;
        }
        // With several days (e.g. "the first weekday"), count matching days of the month.
        let matching: Vec<u32> = (1..=days_in_month(d))
            .filter(|day| {
                NaiveDate::from_ymd_opt(d.year(), d.month(), *day)
                    .is_some_and(|x| self.days_of_week.contains(&x.weekday()))
            })
            .collect();
        let pos = match self.index {
            WeekIndex::First => 0,
            WeekIndex::Second => 1,
            WeekIndex::Third => 2,
            WeekIndex::Fourth => 3,
            WeekIndex::Last => matching.len().saturating_sub(1),
        };
        matching.get(pos) == Some(&d.day())
    }

    /// Every occurrence date of the series up to `until` (inclusive), in order.
    pub fn dates_until(&self, until: NaiveDate) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        let last = match self.end {
            RangeEnd::EndDate(e) => e.min(until),
            _ => until,
        };
        let cap = match self.end {
            RangeEnd::Numbered(n) => (n as usize).min(MAX_OCCURRENCES),
            _ => MAX_OCCURRENCES,
        };
        let mut d = self.start;
        let hard_stop = self.start + Duration::days(MAX_SCAN_DAYS);
        while d <= last && d <= hard_stop && out.len() < cap {
            if self.matches(d) {
                out.push(d);
            }
            match d.succ_opt() {
                Some(n) => d = n,
                None => break,
            }
        }
        out
    }

    /// The last date the series can have, if it ends.
    pub fn last_date(&self) -> Option<NaiveDate> {
        match self.end {
            RangeEnd::EndDate(e) => Some(e),
            RangeEnd::NoEnd => None,
            RangeEnd::Numbered(_) => self
                .dates_until(self.start + Duration::days(MAX_SCAN_DAYS))
                .last()
                .copied(),
        }
    }
}

fn week_start(d: NaiveDate, first: Weekday) -> NaiveDate {
    let back =
        (7 + d.weekday().num_days_from_monday() as i64 - first.num_days_from_monday() as i64) % 7;
    d - Duration::days(back)
}

fn months_between(a: NaiveDate, b: NaiveDate) -> i64 {
    (b.year() as i64 * 12 + b.month() as i64) - (a.year() as i64 * 12 + a.month() as i64)
}

pub fn days_in_month(d: NaiveDate) -> u32 {
    let (y, m) = if d.month() == 12 {
        (d.year() + 1, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|n| n.pred_opt())
        .map(|n| n.day())
        .unwrap_or(28)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn dates(r: serde_json::Value, until: &str) -> Vec<String> {
        Recurrence::parse(&r)
            .unwrap()
            .dates_until(d(until))
            .iter()
            .map(|x| x.to_string())
            .collect()
    }

    #[test]
    fn weekly_every_other_week_numbered() {
        let r = json!({"pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "thursday"], "firstDayOfWeek": "sunday"},
            "range": {"type": "numbered", "startDate": "2026-03-03", "numberOfOccurrences": 5}});
        // 2026-03-03 is a Tuesday: Thursday that week, then Monday+Thursday every other week.
        assert_eq!(
            dates(r, "2027-01-01"),
            [
                "2026-03-05",
                "2026-03-16",
                "2026-03-19",
                "2026-03-30",
                "2026-04-02"
            ]
        );
    }

    #[test]
    fn monthly_and_yearly_patterns() {
        let r = json!({"pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
            "range": {"type": "endDate", "startDate": "2026-01-01", "endDate": "2026-04-30"}});
        assert_eq!(
            dates(r, "2030-01-01"),
            ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]
        );
        let r = json!({"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["friday"], "index": "last"},
            "range": {"type": "numbered", "startDate": "2026-01-01", "numberOfOccurrences": 3}});
        assert_eq!(
            dates(r, "2030-01-01"),
            ["2026-01-30", "2026-02-27", "2026-03-27"]
        );
        let r = json!({"pattern": {"type": "absoluteYearly", "interval": 1, "dayOfMonth": 29, "month": 2},
            "range": {"type": "noEnd", "startDate": "2026-01-01"}});
        assert_eq!(
            dates(r, "2028-12-31"),
            ["2026-02-28", "2027-02-28", "2028-02-29"]
        );
        let r = json!({"pattern": {"type": "daily", "interval": 3},
            "range": {"type": "endDate", "startDate": "2026-01-01", "endDate": "2026-01-10"}});
        assert_eq!(
            dates(r, "2030-01-01"),
            ["2026-01-01", "2026-01-04", "2026-01-07", "2026-01-10"]
        );
    }

    #[test]
    fn invalid_recurrences_are_rejected() {
        for r in [
            json!({"pattern": {"type": "daily"}, "range": {"type": "noEnd", "startDate": "9999-12-31"}}),
            json!({"pattern": {"type": "weekly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2026-01-01"}}),
            json!({"pattern": {"type": "daily"}, "range": {"type": "endDate", "startDate": "2026-01-05", "endDate": "2026-01-01"}}),
            json!({"pattern": {"type": "hourly"}, "range": {"type": "noEnd", "startDate": "2026-01-01"}}),
            json!({"pattern": {"type": "daily"}}),
        ] {
            assert_eq!(Recurrence::parse(&r).unwrap_err().status, 400);
        }
    }
}
