//! When a task's next backup is due (SPEC F-B3): daily, every 3 days, weekly,
//! or three times a day, at a chosen hour (UTC).

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Daily,
    Every3Days,
    Weekly,
    /// At the chosen hour and 8 and 16 hours later.
    ThreeTimesADay,
}

impl Frequency {
    pub fn interval(self) -> Duration {
        match self {
            Frequency::Daily => Duration::days(1),
            Frequency::Every3Days => Duration::days(3),
            Frequency::Weekly => Duration::days(7),
            Frequency::ThreeTimesADay => Duration::hours(8),
        }
    }
}

impl std::str::FromStr for Frequency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "daily" => Ok(Frequency::Daily),
            "every_3_days" => Ok(Frequency::Every3Days),
            "weekly" => Ok(Frequency::Weekly),
            "three_times_a_day" => Ok(Frequency::ThreeTimesADay),
            other => Err(format!(
                "unknown backup frequency '{other}' (daily, every_3_days, weekly, three_times_a_day)"
            )),
        }
    }
}

/// The first slot at or after `after` for this frequency and hour. Slots are
/// `hour:00` UTC plus whole multiples of the frequency's interval counted from
/// the Unix epoch, so every process computes the same slots.
pub fn next_slot(freq: Frequency, hour: u32, after: DateTime<Utc>) -> DateTime<Utc> {
    let step = freq.interval().num_seconds();
    let base = i64::from(hour.min(23)) * 3600;
    let since = after.timestamp() - base;
    let k = since.div_euclid(step)
        + i64::from(since.rem_euclid(step) != 0 || after.timestamp_subsec_nanos() != 0);
    Utc.timestamp_opt(base + k * step, 0)
        .single()
        .unwrap_or(after)
}

/// The slot a task is due for at `now`, if any, given the slot of its last
/// scheduled run (`None`: never ran). A task that missed several slots (the
/// service was down) runs once, for the earliest missed slot.
pub fn is_due(
    freq: Frequency,
    hour: u32,
    last_due: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let from = match last_due {
        Some(last) => last + Duration::seconds(1),
        // A new task's first slot is the latest one not after now.
        None => now - freq.interval() + Duration::seconds(1),
    };
    let candidate = next_slot(freq, hour, from);
    (candidate <= now).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn daily_slots_are_at_the_hour() {
        assert_eq!(
            next_slot(Frequency::Daily, 2, t("2026-03-10T01:00:00Z")),
            t("2026-03-10T02:00:00Z")
        );
        assert_eq!(
            next_slot(Frequency::Daily, 2, t("2026-03-10T02:00:00Z")),
            t("2026-03-10T02:00:00Z")
        );
        assert_eq!(
            next_slot(Frequency::Daily, 2, t("2026-03-10T02:00:01Z")),
            t("2026-03-11T02:00:00Z")
        );
        assert_eq!(
            next_slot(Frequency::Daily, 23, t("2026-12-31T23:30:00Z")),
            t("2027-01-01T23:00:00Z")
        );
    }

    #[test]
    fn three_times_a_day_is_every_eight_hours_from_the_hour() {
        let slots: Vec<_> = (0..4)
            .scan(t("2026-03-10T00:00:00Z"), |at, _| {
                let s = next_slot(Frequency::ThreeTimesADay, 5, *at);
                *at = s + Duration::seconds(1);
                Some(s)
            })
            .collect();
        assert_eq!(
            slots,
            vec![
                t("2026-03-10T05:00:00Z"),
                t("2026-03-10T13:00:00Z"),
                t("2026-03-10T21:00:00Z"),
                t("2026-03-11T05:00:00Z")
            ]
        );
    }

    #[test]
    fn multi_day_frequencies_keep_their_period() {
        for (freq, days) in [(Frequency::Every3Days, 3), (Frequency::Weekly, 7)] {
            let a = next_slot(freq, 4, t("2026-05-01T00:00:00Z"));
            let b = next_slot(freq, 4, a + Duration::seconds(1));
            assert_eq!(b - a, Duration::days(days));
            assert_eq!(a.hour(), 4);
            assert!(
                a >= t("2026-05-01T00:00:00Z")
                    && a - t("2026-05-01T00:00:00Z") < Duration::days(days)
            );
        }
    }

    #[test]
    fn due_once_per_slot() {
        let last = Some(t("2026-03-10T02:00:00Z"));
        assert_eq!(
            is_due(Frequency::Daily, 2, last, t("2026-03-10T20:00:00Z")),
            None
        );
        assert_eq!(
            is_due(Frequency::Daily, 2, last, t("2026-03-11T02:05:00Z")),
            Some(t("2026-03-11T02:00:00Z"))
        );
        // A machine that was down for three days runs once, not three times.
        assert_eq!(
            is_due(Frequency::Daily, 2, last, t("2026-03-14T09:00:00Z")),
            Some(t("2026-03-11T02:00:00Z"))
        );
        assert!(is_due(Frequency::Daily, 2, None, t("2026-03-10T02:30:00Z")).is_some());
        assert_eq!("weekly".parse::<Frequency>(), Ok(Frequency::Weekly));
        assert!("hourly".parse::<Frequency>().is_err());
    }
}
