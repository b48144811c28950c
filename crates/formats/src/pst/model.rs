//! The items a PST is written from: our own model, independent of Graph JSON.

use chrono::{DateTime, NaiveDate, Utc};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mailbox {
    pub name: String,
    pub email: String,
}

impl Mailbox {
    pub fn new(name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            email: email.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Importance {
    Low,
    #[default]
    Normal,
    High,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub mime_type: String,
    pub data: Vec<u8>,
}

/// An e-mail (or any IPM.* item shown as a message).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Defaults to IPM.Note.
    pub message_class: Option<String>,
    pub subject: String,
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub sent: Option<DateTime<Utc>>,
    pub received: Option<DateTime<Utc>>,
    pub body_text: Option<String>,
    pub body_html: Option<String>,
    pub read: bool,
    pub flagged: bool,
    pub importance: Importance,
    pub internet_message_id: Option<String>,
    pub attachments: Vec<Attachment>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contact {
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    /// Up to three addresses are kept (Outlook's Email1..Email3).
    pub emails: Vec<String>,
    pub business_phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub home_phone: Option<String>,
    pub notes: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecurrencePattern {
    /// Every `interval` days.
    Daily,
    /// Every `interval` weeks on the given days (bit 0 = Sunday .. bit 6 = Saturday).
    Weekly { days: u8 },
    /// Every `interval` months on day `day` (1..=31).
    Monthly { day: u8 },
    /// Every `interval` years on `month` (1..=12) / `day`.
    Yearly { month: u8, day: u8 },
    /// Every `interval` months on the `nth` (1..=4, 5 = last) of the days in
    /// `days` (bit 0 = Sunday .. bit 6 = Saturday): "the first Monday", "the
    /// last weekday" ([MS-OXOCAL] MonthNth).
    MonthlyNth { days: u8, nth: u8 },
    /// Every `interval` years, in `month`, on the `nth` of `days`.
    YearlyNth { month: u8, days: u8, nth: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecurrenceEnd {
    Never,
    After(u32),
    On(NaiveDate),
}

/// One changed occurrence of a recurring appointment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// Date of the occurrence as originally scheduled.
    pub original_date: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub subject: Option<String>,
    pub location: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recurrence {
    pub pattern: RecurrencePattern,
    pub interval: u32,
    pub end: RecurrenceEnd,
    /// Occurrences removed (original dates).
    pub deleted: Vec<NaiveDate>,
    pub exceptions: Vec<Exception>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Appointment {
    pub subject: String,
    pub body: Option<String>,
    pub location: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub all_day: bool,
    pub organizer: Option<Mailbox>,
    pub attendees: Vec<Mailbox>,
    pub recurrence: Option<Recurrence>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TaskStatus {
    #[default]
    NotStarted,
    InProgress,
    Completed,
    WaitingOnOthers,
    Deferred,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Task {
    pub subject: String,
    pub body: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub due: Option<DateTime<Utc>>,
    pub status: TaskStatus,
    /// 0.0 ..= 1.0
    pub percent_complete: f64,
    pub importance: Importance,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Note {
    /// The note's text; Outlook shows its first line as the subject.
    pub body: String,
    pub created: Option<DateTime<Utc>>,
}
