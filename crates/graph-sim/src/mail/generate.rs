//! Generated mailboxes and simulated mail activity.
//!
//! Everything here is a pure function of the seed and the directory. A
//! user's mailbox holds: mail it sent (its deterministic sent list), mail its
//! neighbours (users within [`RADIUS`] positions in the tenant) sent to it
//! (derived from *their* sent lists, so no other mailbox is generated), mail
//! from outside the tenant, and a few drafts.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use super::mime::{POOL, pool_item};
use super::{
    Addr, Att, AttData, Body, Delivery, F_ARCHIVE, F_DELETED, F_DRAFTS, F_INBOX, F_JUNK,
    F_RI_DELETIONS, F_ROOT, F_SENT, F_USER, Mailbox, Msg, hkey,
};
use crate::directory::{Directory, User};
use crate::rng::{FIRST_NAMES, LAST_NAMES, SimRng, pick, rng_for, stable_guid, title};
use crate::{ActivityReport, Sim, generation_anchor};

/// Users within this many positions of each other mail each other.
pub const RADIUS: u32 = 4;

const EXTERNAL_DOMAINS: &[&str] = &[
    "fabrikam.com",
    "northwindtraders.com",
    "adventure-works.com",
    "tailspintoys.com",
    "wingtiptoys.com",
    "litware.com",
    "proseware.com",
    "woodgrovebank.com",
];
const NEWSLETTER: &str = "news.contoso-partners.net";
const CATEGORIES: &[&str] = &[
    "Red category",
    "Blue category",
    "Green category",
    "Projet Übersicht",
];

pub fn user_addr(u: &User) -> Addr {
    Addr::new(
        u.display_name.clone(),
        u.mail.clone().unwrap_or_else(|| u.upn.clone()),
    )
}

struct Counts {
    sent: usize,
    external: usize,
    drafts: usize,
}

fn counts(sim: &Sim, idx: u32) -> Counts {
    let mut r = rng_for(sim.seed(), &["mail", "count", &idx.to_string()]);
    let base = r.random_range(40..=120) as f64 * sim.cfg.content_scale.max(0.0);
    let total = base.round() as usize;
    Counts {
        sent: total / 6,
        external: total * 11 / 20,
        drafts: r.random_range(0..=3usize).min(total),
    }
}

/// Generated users near `idx` that have mailboxes (deleted ones included: mail
/// they sent before leaving is still in their colleagues' mailboxes).
fn neighbours(dir: &Directory, n_users: u32, idx: u32) -> Vec<&User> {
    let mut out: Vec<&User> = Vec::new();
    if n_users < 2 {
        return out;
    }
    for d in 1..=RADIUS {
        for j in [
            (idx + d) % n_users,
            (idx + n_users - (d % n_users)) % n_users,
        ] {
            if j == idx {
                continue;
            }
            if let Some(u) = dir.users.get(j as usize)
                && u.index == j
                && u.has_mailbox
                && !out.iter().any(|o| o.index == j)
            {
                out.push(u);
            }
        }
    }
    out
}

fn imid(seed: u64, label: &str) -> String {
    let g = stable_guid(seed, &["mail", "imid", label]);
    let hex = g.simple().to_string().to_ascii_uppercase();
    format!(
        "<{}@{}.namprd{:02}.prod.outlook.com>",
        &hex[..24],
        &hex[..12],
        (g.as_bytes()[15] % 20) + 1
    )
}

fn conversation(seed: u64, thread: &str, pos: usize, at: DateTime<Utc>) -> (String, Vec<u8>) {
    let g = stable_guid(seed, &["mail", "conv", thread]);
    let mut id = vec![0x00, 0x03, 0x24, 0x10];
    id.extend_from_slice(g.as_bytes());
    use base64::Engine;
    let conv_id = base64::engine::general_purpose::URL_SAFE.encode(&id);
    let mut idx = vec![0x01];
    let ft = (at.timestamp() as u64 + 11_644_473_600) * 10_000_000;
    idx.extend_from_slice(&ft.to_be_bytes()[..5]);
    idx.extend_from_slice(g.as_bytes());
    for i in 0..pos {
        idx.extend_from_slice(&[0x00, 0x00, 0x01, (i as u8).wrapping_mul(37), 0x2a]);
    }
    (conv_id, idx)
}

fn attachments(sim: &Sim, label: &str, at: DateTime<Utc>) -> Vec<Att> {
    let mut r = rng_for(sim.seed(), &["mail", "atts", label]);
    let mut out = Vec::new();
    let mut key = 1;
    if r.random_bool(0.12) {
        out.push(Att {
            key,
            name: "image001.png".into(),
            content_type: "image/png".into(),
            size: r.random_range(2_000..40_000),
            inline: true,
            content_id: Some(format!(
                "image001.png@01DC{:04X}.{:08X}",
                r.random_range(0..0xffffu32),
                r.random::<u32>()
            )),
            modified: at,
            data: AttData::Gen {
                label: format!("{label}:inline"),
                len: 0,
                compressible: false,
            },
        });
        if let Some(a) = out.last_mut()
            && let AttData::Gen { len, .. } = &mut a.data
        {
            *len = a.size as usize;
        }
        key += 1;
    }
    if r.random_bool(0.25) {
        let n = r.random_range(1..=3);
        for i in 0..n {
            let roll: f64 = r.random();
            let shared = r.random_bool(0.6);
            let att = if shared {
                let idx = if roll < 0.94 {
                    r.random_range(0..30)
                } else if roll < 0.995 {
                    r.random_range(30..38)
                } else if roll < 0.999 {
                    38
                } else {
                    39
                };
                let idx = idx.min(POOL - 1);
                let (name, ct, size, _) = pool_item(sim.seed(), idx);
                Att {
                    key,
                    name,
                    content_type: ct,
                    size: size as u64,
                    inline: false,
                    content_id: None,
                    modified: at,
                    data: AttData::Pool(idx),
                }
            } else {
                let size = r.random_range(1_024..400_000);
                let comp = r.random_bool(0.5);
                let name = format!(
                    "{}.{}",
                    title(&mut r, 1, 3),
                    if comp { "txt" } else { "pdf" }
                );
                Att {
                    key,
                    name,
                    content_type: if comp {
                        "text/plain"
                    } else {
                        "application/pdf"
                    }
                    .into(),
                    size,
                    inline: false,
                    content_id: None,
                    modified: at,
                    data: AttData::Gen {
                        label: format!("{label}:{i}"),
                        len: size as usize,
                        compressible: comp,
                    },
                }
            };
            out.push(att);
            key += 1;
        }
    }
    out
}

/// A mail as its author sent it, before any mailbox holds a copy.
pub struct Spec {
    pub label: String,
    pub from: Addr,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    /// Ids of internal recipients (each gets a copy).
    pub rcpt: Vec<String>,
    pub subject: String,
    pub topic: String,
    pub sent: DateTime<Utc>,
    pub imid: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub conv: (String, Vec<u8>),
    pub importance: String,
    pub atts: Vec<Att>,
    pub internal: bool,
}

impl Spec {
    /// The copy in the author's Sent Items.
    pub fn sent_copy(&self) -> Msg {
        self.msg(None, self.sent, true)
    }

    /// The copy delivered to a recipient.
    pub fn inbound_copy(&self, rcpt_uid: &str, received: DateTime<Utc>) -> Msg {
        self.msg(
            Some(Delivery {
                label: format!("{}>{}", self.label, rcpt_uid),
                internal: self.internal,
            }),
            received,
            false,
        )
    }

    fn msg(&self, delivery: Option<Delivery>, received: DateTime<Utc>, read: bool) -> Msg {
        Msg {
            key: 0,
            created_seq: 0,
            subject: self.subject.clone(),
            from: self.from.clone(),
            sender: self.from.clone(),
            to: self.to.clone(),
            cc: self.cc.clone(),
            bcc: Vec::new(),
            reply_to: Vec::new(),
            internet_message_id: self.imid.clone(),
            in_reply_to: self.in_reply_to.clone(),
            references: self.references.clone(),
            conversation_id: self.conv.0.clone(),
            conversation_index: self.conv.1.clone(),
            thread_topic: self.topic.clone(),
            created: received,
            modified: received,
            received,
            sent: Some(self.sent),
            is_read: read,
            is_draft: false,
            flag: "notFlagged".into(),
            categories: Vec::new(),
            importance: self.importance.clone(),
            focused: true,
            read_receipt: false,
            body: Body::Gen {
                label: self.label.clone(),
            },
            next_att: self.atts.len() as u64 + 1,
            atts: self.atts.clone(),
            delivery,
            raw: None,
            ext: Vec::new(),
            change: 0,
        }
    }
}

fn thread_links(seed: u64, labels: &[String]) -> (Option<String>, Vec<String>) {
    let refs: Vec<String> = labels.iter().map(|l| imid(seed, l)).collect();
    (refs.last().cloned(), refs)
}

/// Message `n` of the sent list of generated user `author`.
pub fn internal_spec(sim: &Sim, dir: &Directory, author: &User, n: usize) -> Spec {
    let seed = sim.seed();
    let a = author.index;
    let t = n / 3;
    let pos = n % 3;
    let thread = format!("int:{a}:t{t}");
    let mut tr = rng_for(seed, &["mail", "thread", &thread]);
    let topic = title(&mut tr, 2, 6);
    let base = generation_anchor() - Duration::minutes(tr.random_range(60..400 * 1440));
    let sent = base + Duration::minutes(pos as i64 * 97);
    let nb = neighbours(dir, sim.cfg.users, a);
    let mut to = Vec::new();
    let mut cc = Vec::new();
    let mut rcpt = Vec::new();
    if !nb.is_empty() {
        let n_to = tr.random_range(1..=2usize).min(nb.len());
        let n_cc = tr.random_range(0..=1usize);
        let start = tr.random_range(0..nb.len());
        for i in 0..(n_to + n_cc).min(nb.len()) {
            let u = nb[(start + i) % nb.len()];
            rcpt.push(u.id.clone());
            if i < n_to {
                to.push(user_addr(u));
            } else {
                cc.push(user_addr(u));
            }
        }
    }
    if tr.random_bool(0.15) || to.is_empty() {
        let d = *pick(&mut tr, EXTERNAL_DOMAINS);
        let first = *pick(&mut tr, FIRST_NAMES);
        let last = *pick(&mut tr, LAST_NAMES);
        to.push(external_addr(first, last, d));
    }
    let label = format!("int:{a}:{n}");
    let prev: Vec<String> = (t * 3..n).map(|i| format!("int:{a}:{i}")).collect();
    let (in_reply_to, references) = thread_links(seed, &prev);
    let mut r = rng_for(seed, &["mail", "spec", &label]);
    let importance = importance(&mut r);
    Spec {
        imid: imid(seed, &label),
        subject: if pos == 0 {
            topic.clone()
        } else {
            format!("RE: {topic}")
        },
        topic,
        from: user_addr(author),
        to,
        cc,
        rcpt,
        sent,
        in_reply_to,
        references,
        conv: conversation(seed, &thread, pos, base),
        importance,
        atts: attachments(sim, &label, sent),
        internal: true,
        label,
    }
}

fn external_addr(first: &str, last: &str, domain: &str) -> Addr {
    let local: String = format!("{first}.{last}")
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                'x'
            }
        })
        .collect();
    Addr::new(format!("{first} {last}"), format!("{local}@{domain}"))
}

fn importance(r: &mut SimRng) -> String {
    let x: f64 = r.random();
    if x < 0.05 {
        "high"
    } else if x < 0.08 {
        "low"
    } else {
        "normal"
    }
    .into()
}

/// Message `n` from outside the tenant to `user` (`label` keeps live mail apart).
pub fn external_spec(sim: &Sim, user: &User, label: String, sent: DateTime<Utc>) -> Spec {
    let seed = sim.seed();
    let mut r = rng_for(seed, &["mail", "spec", &label]);
    let newsletter = r.random_bool(0.15);
    let (from, subject) = if newsletter {
        (
            Addr::new("Contoso Partners Newsletter", format!("news@{NEWSLETTER}")),
            format!("Newsletter: {}", title(&mut r, 2, 5)),
        )
    } else {
        let d = *pick(&mut r, EXTERNAL_DOMAINS);
        let first = *pick(&mut r, FIRST_NAMES);
        let last = *pick(&mut r, LAST_NAMES);
        (external_addr(first, last, d), title(&mut r, 2, 7))
    };
    let reply = !newsletter && r.random_bool(0.2);
    let thread = format!("{label}:thread");
    let importance = importance(&mut r);
    Spec {
        imid: imid(seed, &label),
        subject: if reply {
            format!("RE: {subject}")
        } else {
            subject.clone()
        },
        topic: subject,
        from,
        to: vec![user_addr(user)],
        cc: Vec::new(),
        rcpt: vec![user.id.clone()],
        sent,
        in_reply_to: reply.then(|| imid(seed, &format!("{label}:parent"))),
        references: if reply {
            vec![imid(seed, &format!("{label}:parent"))]
        } else {
            Vec::new()
        },
        conv: conversation(seed, &thread, usize::from(reply), sent),
        importance,
        atts: attachments(sim, &label, sent),
        internal: false,
        label,
    }
}

/// Applies what a person does to mail they received: read state, flags,
/// categories, focused/other.
fn settle(r: &mut SimRng, m: &mut Msg) {
    m.is_read = r.random_bool(0.8);
    let f: f64 = r.random();
    m.flag = if f < 0.08 {
        "flagged"
    } else if f < 0.12 {
        "complete"
    } else {
        "notFlagged"
    }
    .into();
    if r.random_bool(0.1) {
        m.categories = vec![pick(r, CATEGORIES).to_string()];
    }
    m.focused = r.random_bool(0.85);
}

fn user_folders(mb: &mut Mailbox, r: &mut SimRng) -> Vec<u64> {
    let mut out = Vec::new();
    let projects = mb.new_folder(F_INBOX, "Projects", 0);
    out.push(projects);
    out.push(mb.new_folder(projects, "2025", 0));
    if r.random_bool(0.5) {
        out.push(mb.new_folder(F_INBOX, "Newsletters", 0));
    }
    out.push(mb.new_folder(F_ARCHIVE, "Receipts", 0));
    if r.random_bool(0.5) {
        out.push(mb.new_folder(F_ARCHIVE, "2024", 0));
    }
    if r.random_bool(0.4) {
        let c = mb.new_folder(F_ROOT, "Customers", 0);
        out.push(c);
        if r.random_bool(0.5) {
            out.push(mb.new_folder(c, "Fabrikam", 0));
        }
    }
    out
}

fn place(r: &mut SimRng, mb: &Mailbox, folders: &[u64], external: bool, newsletter: bool) -> u64 {
    if newsletter
        && let Some(f) = mb
            .children(F_INBOX)
            .iter()
            .find(|f| f.name == "Newsletters")
    {
        return f.key;
    }
    let x: f64 = r.random();
    if x < 0.55 {
        F_INBOX
    } else if x < 0.72 && !folders.is_empty() {
        folders[r.random_range(0..folders.len())]
    } else if x < 0.82 {
        F_ARCHIVE
    } else if x < 0.9 {
        F_DELETED
    } else if x < 0.93 && external {
        F_JUNK
    } else {
        F_INBOX
    }
}

/// The mailbox of `user` as the seed makes it (empty for users created
/// through the API).
pub fn generate(sim: &Sim, user: &User) -> Mailbox {
    let mut mb = Mailbox::empty(sim, &user.id, user_addr(user));
    if !user.generated || user.index >= sim.cfg.users {
        return mb;
    }
    let dir = sim.directory.read();
    let seed = sim.seed();
    let mut fr = rng_for(seed, &["mail", "folders", &user.id]);
    let folders = user_folders(&mut mb, &mut fr);
    let mut all: Vec<(u64, Msg)> = Vec::new();
    let me = user.index;
    let c = counts(sim, me);
    // Sent Items.
    if super::sends_mail(user.kind) {
        for n in 0..c.sent {
            let spec = internal_spec(sim, &dir, user, n);
            let mut m = spec.sent_copy();
            let mut r = rng_for(seed, &["mail", "place", &user.id, &spec.label]);
            let folder = if r.random_bool(0.04) {
                F_DELETED
            } else {
                F_SENT
            };
            if r.random_bool(0.05) {
                m.categories = vec![pick(&mut r, CATEGORIES).to_string()];
            }
            all.push((folder, m));
        }
    }
    // Mail from colleagues: their sent lists, filtered to what names this user.
    for nb in neighbours(&dir, sim.cfg.users, me) {
        if !super::sends_mail(nb.kind) {
            continue;
        }
        let nc = counts(sim, nb.index);
        for n in 0..nc.sent {
            let spec = internal_spec(sim, &dir, nb, n);
            if !spec.rcpt.iter().any(|id| id == &user.id) {
                continue;
            }
            let mut r = rng_for(seed, &["mail", "place", &user.id, &spec.label]);
            let received = spec.sent + Duration::seconds(r.random_range(2..90));
            let mut m = spec.inbound_copy(&user.id, received);
            settle(&mut r, &mut m);
            let folder = place(&mut r, &mb, &folders, false, false);
            all.push((folder, m));
        }
    }
    // Mail from outside.
    for n in 0..c.external {
        let label = format!("ext:{}:{n}", user.id);
        let mut r = rng_for(seed, &["mail", "place", &user.id, &label]);
        let sent = generation_anchor() - Duration::minutes(r.random_range(30..400 * 1440));
        let spec = external_spec(sim, user, label, sent);
        let newsletter = spec.from.address.ends_with(NEWSLETTER);
        let received = sent + Duration::seconds(r.random_range(5..600));
        let mut m = spec.inbound_copy(&user.id, received);
        settle(&mut r, &mut m);
        let folder = place(&mut r, &mb, &folders, true, newsletter);
        all.push((folder, m));
    }
    // Drafts.
    let nb = neighbours(&dir, sim.cfg.users, me);
    for n in 0..c.drafts {
        let label = format!("draft:{}:{n}", user.id);
        let mut r = rng_for(seed, &["mail", "spec", &label]);
        let at = generation_anchor() - Duration::minutes(r.random_range(30..30 * 1440));
        let to = if nb.is_empty() {
            vec![external_addr("Ava", "Stone", "fabrikam.com")]
        } else {
            vec![user_addr(nb[r.random_range(0..nb.len())])]
        };
        let topic = title(&mut r, 2, 5);
        let conv = conversation(seed, &label, 0, at);
        all.push((
            F_DRAFTS,
            Msg {
                key: 0,
                created_seq: 0,
                subject: topic.clone(),
                from: user_addr(user),
                sender: user_addr(user),
                to,
                cc: Vec::new(),
                bcc: Vec::new(),
                reply_to: Vec::new(),
                internet_message_id: imid(seed, &label),
                in_reply_to: None,
                references: Vec::new(),
                conversation_id: conv.0,
                conversation_index: conv.1,
                thread_topic: topic,
                created: at,
                modified: at,
                received: at,
                sent: None,
                is_read: true,
                is_draft: true,
                flag: "notFlagged".into(),
                categories: Vec::new(),
                importance: "normal".into(),
                focused: true,
                read_receipt: false,
                body: Body::Gen { label },
                atts: Vec::new(),
                next_att: 1,
                delivery: None,
                raw: None,
                ext: Vec::new(),
                change: 0,
            },
        ));
    }
    drop(dir);
    // Keys follow time, so ids and delta pages come out oldest first.
    all.sort_by(|a, b| {
        (a.1.received, &a.1.internet_message_id).cmp(&(b.1.received, &b.1.internet_message_id))
    });
    for (folder, mut m) in all {
        m.key = mb.alloc_key();
        mb.insert_msg(folder, m, 0);
    }
    mb
}

fn keys_in(mb: &Mailbox, folder: u64) -> Vec<u64> {
    mb.msgs
        .get(&folder)
        .map(|l| {
            l.iter()
                .map(|(k, _)| u64::from_str_radix(k, 16).unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

fn pick_key(r: &mut SimRng, keys: &[u64]) -> Option<u64> {
    (!keys.is_empty()).then(|| keys[r.random_range(0..keys.len())])
}

/// One day of what the owner of `mb` does with mail. Returns the copies of
/// mail they sent that other mailboxes receive: `(recipient id, message)`.
pub fn simulate_day(
    sim: &Sim,
    mb: &mut Mailbox,
    r: &mut SimRng,
    report: &mut ActivityReport,
) -> Vec<(String, Msg)> {
    let now = sim.now();
    // Generated mail is dated from the hour, so that its MIME is the same
    // in two simulators of one seed (see `Sim::activity_now`).
    let dated = sim.activity_now();
    let seed = sim.seed();
    let mut out = Vec::new();
    let user = match sim.directory.read().user(&mb.uid).cloned() {
        Some(u) => u,
        None => return out,
    };
    // Inbound mail from outside.
    for _ in 0..r.random_range(0..=3) {
        let seq = sim.next_seq();
        let label = format!("live-ext:{}:{seq}", mb.uid);
        let sent = dated - Duration::minutes(r.random_range(1..600));
        let spec = external_spec(sim, &user, label, sent);
        let mut m = spec.inbound_copy(&mb.uid, sent + Duration::seconds(r.random_range(5..120)));
        m.is_read = false;
        m.key = mb.alloc_key();
        m.created_seq = seq;
        let folder = if r.random_bool(0.05) { F_JUNK } else { F_INBOX };
        mb.insert_msg(folder, m, seq);
        report.created += 1;
    }
    // Mail this user sends to colleagues.
    if super::sends_mail(user.kind) && r.random_bool(0.6) {
        let seq = sim.next_seq();
        let label = format!("live-int:{}:{seq}", mb.uid);
        let dir = sim.directory.read();
        let nb: Vec<User> = if user.index < sim.cfg.users {
            neighbours(&dir, sim.cfg.users, user.index)
                .into_iter()
                .filter(|u| u.deleted.is_none())
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        drop(dir);
        let mut sr = rng_for(seed, &["mail", "spec", &label]);
        let topic = title(&mut sr, 2, 6);
        let mut to = Vec::new();
        let mut rcpt = Vec::new();
        for u in nb.iter().take(sr.random_range(1..=3)) {
            to.push(user_addr(u));
            rcpt.push(u.id.clone());
        }
        if to.is_empty() {
            to.push(external_addr("Ava", "Stone", "fabrikam.com"));
        }
        let sent = dated - Duration::minutes(sr.random_range(1..300));
        let spec = Spec {
            imid: imid(seed, &label),
            subject: topic.clone(),
            topic,
            from: user_addr(&user),
            to,
            cc: Vec::new(),
            rcpt,
            sent,
            in_reply_to: None,
            references: Vec::new(),
            conv: conversation(seed, &label, 0, sent),
            importance: "normal".into(),
            atts: attachments(sim, &label, sent),
            internal: true,
            label,
        };
        let mut m = spec.sent_copy();
        m.key = mb.alloc_key();
        m.created_seq = seq;
        mb.insert_msg(F_SENT, m, seq);
        report.created += 1;
        for id in &spec.rcpt {
            let copy = spec.inbound_copy(id, sent + Duration::seconds(sr.random_range(2..60)));
            let mut copy = copy;
            copy.is_read = false;
            out.push((id.clone(), copy));
        }
    }
    // Reading.
    let unread: Vec<u64> = keys_in(mb, F_INBOX)
        .into_iter()
        .filter(|k| mb.msg(*k).is_some_and(|(_, m)| !m.is_read))
        .collect();
    for k in unread.iter().take(r.random_range(0..=4)) {
        let seq = sim.next_seq();
        if let Some(m) = mb.msg_mut(*k, seq) {
            m.is_read = true;
            m.touch(now);
            report.modified += 1;
        }
    }
    // Flags.
    if r.random_bool(0.4)
        && let Some(k) = pick_key(r, &keys_in(mb, F_INBOX))
    {
        let seq = sim.next_seq();
        if let Some(m) = mb.msg_mut(k, seq) {
            m.flag = if m.flag == "flagged" {
                "complete".into()
            } else {
                "flagged".into()
            };
            m.touch(now);
            report.modified += 1;
        }
    }
    // Filing into folders.
    let user_folders: Vec<u64> = mb
        .folders
        .values()
        .filter(|f| f.key >= F_USER && !f.hidden && !mb.is_below(f.key, F_DELETED))
        .map(|f| f.key)
        .collect();
    if r.random_bool(0.5)
        && !user_folders.is_empty()
        && let Some(k) = pick_key(r, &keys_in(mb, F_INBOX))
    {
        let dest = user_folders[r.random_range(0..user_folders.len())];
        let seq = sim.next_seq();
        if mb.move_msg(k, dest, seq, now) {
            report.moved += 1;
        }
    }
    // Deleting: to Deleted Items, and emptying some of it (soft delete).
    if r.random_bool(0.4)
        && let Some(k) = pick_key(r, &keys_in(mb, F_INBOX))
    {
        let seq = sim.next_seq();
        if mb.move_msg(k, F_DELETED, seq, now) {
            report.deleted += 1;
        }
    }
    if r.random_bool(0.25)
        && let Some(k) = pick_key(r, &keys_in(mb, F_DELETED))
    {
        let seq = sim.next_seq();
        if mb.move_msg(k, F_RI_DELETIONS, seq, now) {
            report.deleted += 1;
        }
    }
    // Hard delete from the dumpster.
    if r.random_bool(0.1)
        && let Some(k) = pick_key(r, &keys_in(mb, F_RI_DELETIONS))
    {
        let seq = sim.next_seq();
        mb.take_msg(k, seq);
    }
    // Occasionally a new folder.
    if r.random_bool(0.05) {
        let seq = sim.next_seq();
        let name = title(r, 1, 3);
        if !mb.children(F_INBOX).iter().any(|f| f.name == name) {
            mb.new_folder(F_INBOX, &name, seq);
            report.created += 1;
        }
    }
    let _ = hkey;
    out
}
