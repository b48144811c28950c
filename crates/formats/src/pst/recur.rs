//! PidLidAppointmentRecur: the AppointmentRecurrencePattern blob of
//! [MS-OXOCAL] 2.2.1.44. Times are written as the appointment's wall-clock
//! time in UTC (the export carries UTC instants).

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime};

use super::{Appointment, PstError, Recurrence, RecurrenceEnd, RecurrencePattern};

pub struct RecurrenceBlob {
    pub bytes: Vec<u8>,
    /// PidLidRecurrenceType: 1 daily, 2 weekly, 3 monthly, 4 yearly.
    pub recur_type: i32,
    pub clip_start: i64,
    pub clip_end: i64,
}

/// EndDate written for recurrences that never end (4500-08-31).
const NEVER_END_MINUTES: u32 = 0x5AE9_80DF;
/// How many occurrences are enumerated at most to find an end date.
const MAX_OCCURRENCES: usize = 100_000;

fn minutes(t: NaiveDateTime) -> Result<u32, PstError> {
    let base = NaiveDate::from_ymd_opt(1601, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
    let base = base.ok_or_else(|| PstError::InvalidItem("calendar base date".into()))?;
    u32::try_from((t - base).num_minutes())
        .map_err(|_| PstError::InvalidItem(format!("date {t} outside the PST calendar range")))
}

fn day_minutes(d: NaiveDate) -> Result<u32, PstError> {
    minutes(d.and_time(NaiveTime::MIN))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

fn month_day(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day.min(days_in_month(year, month)))
}

/// The `nth` (1..=4, 5 = last) day of `year`/`month` whose weekday is in
/// the `days` mask (bit 0 = Sunday).
fn nth_day(year: i32, month: u32, days: u8, nth: u8) -> Option<NaiveDate> {
    let matching: Vec<NaiveDate> = (1..=days_in_month(year, month))
        .filter_map(|d| NaiveDate::from_ymd_opt(year, month, d))
        .filter(|d| days & (1 << d.weekday().num_days_from_sunday()) != 0)
        .collect();
    if nth >= 5 {
        matching.last().copied()
    } else {
        matching.get(usize::from(nth.max(1)) - 1).copied()
    }
}

/// Occurrence dates in order, from the series' first date.
fn occurrences(
    start: NaiveDate,
    pattern: RecurrencePattern,
    interval: u32,
) -> impl Iterator<Item = NaiveDate> {
    let interval = i64::from(interval.max(1));
    let week_start = start - Duration::days(i64::from(start.weekday().num_days_from_sunday()));
    (0..).flat_map(move |k: i64| -> Vec<NaiveDate> {
        match pattern {
            RecurrencePattern::Daily => vec![start + Duration::days(k * interval)],
            RecurrencePattern::Weekly { days } => {
                let week = week_start + Duration::weeks(k * interval);
                (0..7)
                    .filter(|d| days & (1 << d) != 0)
                    .map(|d| week + Duration::days(d))
                    .filter(|d| *d >= start)
                    .collect()
            }
            RecurrencePattern::Monthly { day } => {
                let m = i64::from(start.month0()) + k * interval;
                let year = start.year() + (m / 12) as i32;
                month_day(year, (m % 12) as u32 + 1, u32::from(day))
                    .into_iter()
                    .filter(|d| *d >= start)
                    .collect()
            }
            RecurrencePattern::Yearly { month, day } => {
                let year = start.year() + (k * interval) as i32;
                month_day(year, u32::from(month), u32::from(day))
                    .into_iter()
                    .filter(|d| *d >= start)
                    .collect()
            }
            RecurrencePattern::MonthlyNth { days, nth } => {
                let m = i64::from(start.month0()) + k * interval;
                let year = start.year() + (m / 12) as i32;
                nth_day(year, (m % 12) as u32 + 1, days, nth)
                    .into_iter()
                    .filter(|d| *d >= start)
                    .collect()
            }
            RecurrencePattern::YearlyNth { month, days, nth } => {
                let year = start.year() + (k * interval) as i32;
                nth_day(year, u32::from(month), days, nth)
                    .into_iter()
                    .filter(|d| *d >= start)
                    .collect()
            }
        }
    })
}

fn ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
        .collect()
}

pub fn appointment_recurrence_blob(
    appointment: &Appointment,
    recurrence: &Recurrence,
) -> Result<RecurrenceBlob, PstError> {
    let start = appointment.start.naive_utc();
    let start_date = start.date();
    let interval = recurrence.interval.max(1);
    match recurrence.pattern {
        RecurrencePattern::Weekly { days } if days & 0x7F == 0 => {
            return Err(PstError::InvalidItem(
                "weekly recurrence without days".into(),
            ));
        }
        RecurrencePattern::Monthly { day } if !(1..=31).contains(&day) => {
            return Err(PstError::InvalidItem(format!(
                "monthly recurrence on day {day}"
            )));
        }
        RecurrencePattern::Yearly { month, day }
            if !(1..=12).contains(&month) || !(1..=31).contains(&day) =>
        {
            return Err(PstError::InvalidItem(format!(
                "yearly recurrence on {month}/{day}"
            )));
        }
        RecurrencePattern::MonthlyNth { days, nth }
        | RecurrencePattern::YearlyNth { days, nth, .. }
            if days & 0x7F == 0 || !(1..=5).contains(&nth) =>
        {
            return Err(PstError::InvalidItem(format!(
                "relative recurrence on days {days:#b}, occurrence {nth}"
            )));
        }
        RecurrencePattern::YearlyNth { month, .. } if !(1..=12).contains(&month) => {
            return Err(PstError::InvalidItem(format!(
                "yearly recurrence in month {month}"
            )));
        }
        _ => {}
    }
    let (frequency, pattern_type, recur_type, period): (u16, u16, i32, u32) =
        match recurrence.pattern {
            RecurrencePattern::Daily => (0x200A, 0, 1, interval * 1440),
            RecurrencePattern::Weekly { .. } => (0x200B, 1, 2, interval),
            RecurrencePattern::Monthly { .. } => (0x200C, 2, 3, interval),
            RecurrencePattern::Yearly { .. } => (0x200D, 2, 4, interval * 12),
            // PatternType 0x0003 (MonthNth) with the monthly or yearly
            // frequency, [MS-OXOCAL] 2.2.1.44.1.
            RecurrencePattern::MonthlyNth { .. } => (0x200C, 3, 3, interval),
            RecurrencePattern::YearlyNth { .. } => (0x200D, 3, 4, interval * 12),
        };
    let first_date_time = match recurrence.pattern {
        RecurrencePattern::Daily => day_minutes(start_date)? % period,
        RecurrencePattern::Weekly { .. } => {
            let week_start =
                start_date - Duration::days(i64::from(start_date.weekday().num_days_from_sunday()));
            day_minutes(week_start)? % (period * 10080)
        }
        RecurrencePattern::Monthly { .. }
        | RecurrencePattern::Yearly { .. }
        | RecurrencePattern::MonthlyNth { .. }
        | RecurrencePattern::YearlyNth { .. } => {
            let months = (start_date.year() - 1601) as u32 * 12 + start_date.month0();
            let offset = months % period;
            let d = NaiveDate::from_ymd_opt(1601 + (offset / 12) as i32, offset % 12 + 1, 1)
                .ok_or_else(|| PstError::InvalidItem("recurrence month".into()))?;
            day_minutes(d)?
        }
    };

    let series = occurrences(start_date, recurrence.pattern, interval);
    let (end_type, count, last): (u32, u32, Option<NaiveDate>) = match recurrence.end {
        RecurrenceEnd::After(n) => {
            if n == 0 {
                return Err(PstError::InvalidItem(
                    "recurrence ending after 0 occurrences".into(),
                ));
            }
            let last = series.take((n as usize).min(MAX_OCCURRENCES)).last();
            (0x2022, n, last)
        }
        RecurrenceEnd::On(date) => {
            let dates: Vec<_> = series
                .take(MAX_OCCURRENCES)
                .take_while(|d| *d <= date)
                .collect();
            (0x2021, dates.len() as u32, dates.last().copied())
        }
        RecurrenceEnd::Never => (0x2023, 10, None),
    };

    let mut deleted: Vec<u32> = Vec::new();
    for d in recurrence
        .deleted
        .iter()
        .chain(recurrence.exceptions.iter().map(|e| &e.original_date))
    {
        deleted.push(day_minutes(*d)?);
    }
    deleted.sort_unstable();
    deleted.dedup();
    let mut exceptions = recurrence.exceptions.clone();
    exceptions.sort_by_key(|e| e.start);
    let mut modified = Vec::new();
    for e in &exceptions {
        modified.push(day_minutes(e.start.date_naive())?);
    }

    let mut b = Vec::new();
    let u16le = |b: &mut Vec<u8>, v: u16| b.extend_from_slice(&v.to_le_bytes());
    let u32le = |b: &mut Vec<u8>, v: u32| b.extend_from_slice(&v.to_le_bytes());
    u16le(&mut b, 0x3004);
    u16le(&mut b, 0x3004);
    u16le(&mut b, frequency);
    u16le(&mut b, pattern_type);
    u16le(&mut b, 0); // Gregorian
    u32le(&mut b, first_date_time);
    u32le(&mut b, period);
    u32le(&mut b, 0); // not sliding
    match recurrence.pattern {
        RecurrencePattern::Daily => {}
        RecurrencePattern::Weekly { days } => u32le(&mut b, u32::from(days & 0x7F)),
        RecurrencePattern::Monthly { day } | RecurrencePattern::Yearly { day, .. } => {
            u32le(&mut b, u32::from(day))
        }
        RecurrencePattern::MonthlyNth { days, nth }
        | RecurrencePattern::YearlyNth { days, nth, .. } => {
            u32le(&mut b, u32::from(days & 0x7F));
            u32le(&mut b, u32::from(nth));
        }
    }
    u32le(&mut b, end_type);
    u32le(&mut b, count);
    u32le(&mut b, 0); // week starts on Sunday
    u32le(&mut b, deleted.len() as u32);
    for d in &deleted {
        u32le(&mut b, *d);
    }
    u32le(&mut b, modified.len() as u32);
    for d in &modified {
        u32le(&mut b, *d);
    }
    u32le(&mut b, day_minutes(start_date)?);
    let end_date = match last {
        Some(d) => day_minutes(d)?,
        None => NEVER_END_MINUTES,
    };
    u32le(&mut b, end_date);

    // AppointmentRecurrencePattern part.
    let start_offset = (start - start_date.and_time(NaiveTime::MIN)).num_minutes() as u32;
    let duration = (appointment.end - appointment.start).num_minutes() as u32;
    u32le(&mut b, 0x3006);
    u32le(&mut b, 0x3009);
    u32le(&mut b, start_offset);
    u32le(&mut b, start_offset + duration);
    u16le(&mut b, exceptions.len() as u16);
    let mut flags_of = Vec::new();
    for e in &exceptions {
        u32le(&mut b, minutes(e.start.naive_utc())?);
        u32le(&mut b, minutes(e.end.naive_utc())?);
        u32le(&mut b, day_minutes(e.original_date)? + start_offset);
        let mut flags = 0u16;
        if e.subject.is_some() {
            flags |= 0x0001;
        }
        if e.location.is_some() {
            flags |= 0x0010;
        }
        u16le(&mut b, flags);
        for text in [&e.subject, &e.location].into_iter().flatten() {
            let bytes = ansi(text);
            u16le(&mut b, bytes.len() as u16 + 1);
            u16le(&mut b, bytes.len() as u16);
            b.extend_from_slice(&bytes);
        }
        flags_of.push(flags);
    }
    u32le(&mut b, 0); // ReservedBlock1Size
    for (e, flags) in exceptions.iter().zip(flags_of) {
        u32le(&mut b, 4); // ChangeHighlightSize
        u32le(&mut b, 0); // ChangeHighlightValue
        u32le(&mut b, 0); // ReservedBlockEE1Size
        if flags != 0 {
            u32le(&mut b, minutes(e.start.naive_utc())?);
            u32le(&mut b, minutes(e.end.naive_utc())?);
            u32le(&mut b, day_minutes(e.original_date)? + start_offset);
            for text in [&e.subject, &e.location].into_iter().flatten() {
                let wide: Vec<u16> = text.encode_utf16().collect();
                u16le(&mut b, wide.len() as u16);
                for w in wide {
                    u16le(&mut b, w);
                }
            }
            u32le(&mut b, 0); // ReservedBlockEE2Size
        }
    }
    u32le(&mut b, 0); // ReservedBlock2Size

    let clip_start = super::filetime(start_date.and_time(NaiveTime::MIN).and_utc());
    let clip_end = match last {
        Some(d) => super::filetime(d.and_time(NaiveTime::MIN).and_utc()),
        None => 0x0CB3_4557_A3DD_4000,
    };
    Ok(RecurrenceBlob {
        bytes: b,
        recur_type,
        clip_start,
        clip_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_occurrences_follow_the_day_mask() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 7).unwrap(); // a Wednesday; Tuesdays and Thursdays every other week
        let dates: Vec<_> = occurrences(start, RecurrencePattern::Weekly { days: 0b0001_0100 }, 2)
            .take(4)
            .collect();
        let expected: Vec<_> = [(1, 8), (1, 20), (1, 22), (2, 3)]
            .iter()
            .map(|(m, d)| NaiveDate::from_ymd_opt(2026, *m, *d).unwrap())
            .collect();
        assert_eq!(dates, expected);
    }

    #[test]
    fn nth_occurrences_find_the_first_and_the_last() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        // The first Monday of every month.
        let firsts: Vec<_> = occurrences(
            start,
            RecurrencePattern::MonthlyNth { days: 0b10, nth: 1 },
            1,
        )
        .take(3)
        .collect();
        assert_eq!(
            firsts,
            [(2026, 1, 5), (2026, 2, 2), (2026, 3, 2)]
                .map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap())
        );
        // The last weekday of the month, every other month.
        let lasts: Vec<_> = occurrences(
            start,
            RecurrencePattern::MonthlyNth {
                days: 0b011_1110,
                nth: 5,
            },
            2,
        )
        .take(2)
        .collect();
        assert_eq!(
            lasts,
            [(2026, 1, 30), (2026, 3, 31)]
                .map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap())
        );
        // The fourth Thursday of November, yearly.
        let thanks: Vec<_> = occurrences(
            start,
            RecurrencePattern::YearlyNth {
                month: 11,
                days: 0b1_0000,
                nth: 4,
            },
            1,
        )
        .take(2)
        .collect();
        assert_eq!(
            thanks,
            [(2026, 11, 26), (2027, 11, 25)]
                .map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap())
        );
    }

    #[test]
    fn monthly_occurrences_clamp_to_month_end() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let dates: Vec<_> = occurrences(start, RecurrencePattern::Monthly { day: 31 }, 1)
            .take(3)
            .collect();
        assert_eq!(dates[1], NaiveDate::from_ymd_opt(2026, 2, 28).unwrap());
        assert_eq!(dates[2], NaiveDate::from_ymd_opt(2026, 3, 31).unwrap());
    }
}
