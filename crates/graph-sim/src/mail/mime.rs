//! MIME for messages: rendered deterministically on demand (mail-builder with
//! fixed boundaries, dates and ids) and parsed from uploads (mail-parser).

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::MimePart;
use mail_parser::{MessageParser, MimeHeaders};
use rand::Rng;

use super::{Addr, Att, AttData, Body, Mailbox, Msg};
use crate::Sim;
use crate::rng::{content_bytes, paragraph, rng_for};

/// Number of attachments in the tenant-wide shared pool.
pub const POOL: u32 = 40;

const POOL_NAMES: &[(&str, &str, bool)] = &[
    ("Quarterly report.pdf", "application/pdf", false),
    (
        "Budget 2026.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        false,
    ),
    ("Contoso logo.png", "image/png", false),
    (
        "Meeting notes.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        false,
    ),
    ("Agenda.txt", "text/plain", true),
    (
        "Roadmap.pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        false,
    ),
    ("Données clés.csv", "text/csv", true),
    ("Übersicht Projekt.pdf", "application/pdf", false),
    ("Team photo.jpg", "image/jpeg", false),
    ("Site plan.zip", "application/zip", false),
    ("Terms and conditions.pdf", "application/pdf", false),
    ("Price list.csv", "text/csv", true),
];

/// (name, content type, size, compressible) of shared attachment `i`.
pub fn pool_item(seed: u64, i: u32) -> (String, String, usize, bool) {
    let mut r = rng_for(seed, &["mail", "pool", &i.to_string()]);
    let (name, ct, comp) = POOL_NAMES[i as usize % POOL_NAMES.len()];
    let size = match i {
        0..30 => r.random_range(1_024..200_000),
        30..38 => r.random_range(200_000..3_000_000),
        38 => 8 * 1024 * 1024,
        _ => 30 * 1024 * 1024,
    };
    let name = if (i as usize) < POOL_NAMES.len() {
        name.to_string()
    } else {
        match name.rsplit_once('.') {
            Some((stem, ext)) => format!("{stem} ({}).{ext}", i as usize / POOL_NAMES.len()),
            None => name.to_string(),
        }
    };
    (name, ct.to_string(), size, comp)
}

pub fn att_bytes(sim: &Sim, a: &Att) -> Arc<Vec<u8>> {
    match &a.data {
        AttData::Pool(i) => {
            let (_, _, size, comp) = pool_item(sim.seed(), *i);
            Arc::new(content_bytes(
                sim.seed(),
                &["mail", "pool", &i.to_string()],
                size,
                comp,
            ))
        }
        AttData::Gen {
            label,
            len,
            compressible,
        } => Arc::new(content_bytes(
            sim.seed(),
            &["mail", "att", label],
            *len,
            *compressible,
        )),
        AttData::Bytes(b) => b.clone(),
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    let lower = html.to_ascii_lowercase();
    let body = lower.find("<body").map(|i| &html[i..]).unwrap_or(html);
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The plain-text and HTML bodies of a message.
pub fn body_texts(sim: &Sim, m: &Msg) -> (String, String) {
    match &m.body {
        Body::Gen { label } => {
            let mut r = rng_for(sim.seed(), &["mail", "body", label]);
            let greet =
                m.to.first()
                    .map(|a| {
                        a.name
                            .split_whitespace()
                            .next()
                            .unwrap_or("all")
                            .to_string()
                    })
                    .unwrap_or_else(|| "all".into());
            let n = r.random_range(1..=4);
            let paras: Vec<String> = (0..n)
                .map(|_| {
                    let s = r.random_range(2..=6);
                    paragraph(&mut r, s)
                })
                .collect();
            let sign = m.from.name.clone();
            let mut text = format!("Hi {greet},\r\n\r\n");
            for p in &paras {
                text.push_str(p);
                text.push_str("\r\n\r\n");
            }
            text.push_str(&format!("Best regards,\r\n{sign}\r\n"));
            let mut html = String::from(
                "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n<div>",
            );
            html.push_str(&format!("<p>Hi {},</p>\r\n", escape_html(&greet)));
            for p in &paras {
                html.push_str(&format!("<p>{}</p>\r\n", escape_html(p)));
            }
            for a in m.atts.iter().filter(|a| a.inline) {
                if let Some(cid) = &a.content_id {
                    html.push_str(&format!(
                        "<p><img src=\"cid:{}\" alt=\"{}\"></p>\r\n",
                        escape_html(cid),
                        escape_html(&a.name)
                    ));
                }
            }
            html.push_str(&format!(
                "<p>Best regards,<br>{}</p>\r\n</div>\r\n</body>\r\n</html>\r\n",
                escape_html(&sign)
            ));
            (text, html)
        }
        Body::Given {
            html: true,
            content,
        } => (strip_tags(content), content.clone()),
        Body::Given {
            html: false,
            content,
        } => (
            content.clone(),
            format!(
                "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n<div>{}</div>\r\n</body>\r\n</html>\r\n",
                escape_html(content).replace('\n', "<br>\n")
            ),
        ),
    }
}

fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn hexlabel(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\0");
    }
    h.finalize().to_hex().to_string()
}

/// Received and X-MS-Exchange-Organization headers of a delivered copy, as
/// Exchange stores them (each copy its own).
pub fn delivery_headers(sim: &Sim, mb: &Mailbox, m: &Msg) -> Vec<(String, String)> {
    let Some(d) = &m.delivery else {
        return Vec::new();
    };
    let mut r = rng_for(sim.seed(), &["mail", "delivery", &d.label]);
    let host = |r: &mut crate::rng::SimRng, p: &str| {
        format!(
            "{p}{}{:04}.namprd{:02}.prod.outlook.com",
            ["BY", "SN", "CH", "DM", "MW", "PH"][r.random_range(0..6)],
            r.random_range(1..9999),
            r.random_range(1..22)
        )
    };
    let edge = host(&mut r, "");
    let store = host(&mut r, "");
    let t1 = m.received - chrono::Duration::seconds(r.random_range(1..20));
    let ver = format!(
        "15.20.{}.{:03}",
        r.random_range(7000..9000),
        r.random_range(0..40)
    );
    let net_id = crate::rng::stable_guid(sim.seed(), &["mail", "netid", &d.label]);
    let mut out = vec![(
        "Received".to_string(),
        format!(
            "from {edge} (2603:10b6:a03:{:x}::{:x}) by {store} with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id {ver}; {}",
            r.random_range(0x100..0xfff),
            r.random_range(1..0xff),
            rfc2822(m.received)
        ),
    )];
    if d.internal {
        out.push((
            "Received".to_string(),
            format!(
                "from {} ([fe80::{:x}]) by {edge} ([fe80::{:x}%{}]) with mapi id {ver}; {}",
                host(&mut r, ""),
                r.random_range(0x1000..0xffff),
                r.random_range(0x1000..0xffff),
                r.random_range(3..9),
                rfc2822(t1)
            ),
        ));
    } else {
        let domain = m
            .from
            .address
            .rsplit_once('@')
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        out.push((
            "Received".to_string(),
            format!(
                "from mail.{domain} ({}.{}.{}.{}) by {edge} with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id {ver} via Frontend Transport; {}",
                r.random_range(20..220),
                r.random_range(0..255),
                r.random_range(0..255),
                r.random_range(1..254),
                rfc2822(t1)
            ),
        ));
    }
    out.push((
        "X-MS-Exchange-Organization-Network-Message-Id".into(),
        net_id.to_string(),
    ));
    out.push(("X-MS-Exchange-Organization-AuthSource".into(), edge.clone()));
    out.push((
        "X-MS-Exchange-Organization-AuthAs".into(),
        if d.internal { "Internal" } else { "Anonymous" }.into(),
    ));
    out.push((
        "X-MS-Exchange-Organization-SCL".into(),
        if d.internal { "-1" } else { "1" }.into(),
    ));
    out.push((
        "X-MS-Exchange-Organization-MessageDirectionality".into(),
        if d.internal {
            "Originating"
        } else {
            "Incoming"
        }
        .into(),
    ));
    out.push((
        "X-MS-Exchange-Organization-ExpirationStartTime".into(),
        rfc2822(m.received),
    ));
    out.push((
        "X-MS-Exchange-Organization-RecordReviewCfmType".into(),
        "0".into(),
    ));
    let _ = mb;
    out
}

fn addr_list(v: &[Addr]) -> String {
    v.iter()
        .map(|a| format!("{} <{}>", a.name, a.address))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `internetMessageHeaders`: the transport headers of a received message.
pub fn header_list(sim: &Sim, mb: &Mailbox, m: &Msg) -> Vec<(String, String)> {
    if m.is_draft {
        return Vec::new();
    }
    let mut out = delivery_headers(sim, mb, m);
    out.push(("From".into(), addr_list(std::slice::from_ref(&m.from))));
    if !m.to.is_empty() {
        out.push(("To".into(), addr_list(&m.to)));
    }
    if !m.cc.is_empty() {
        out.push(("CC".into(), addr_list(&m.cc)));
    }
    out.push(("Subject".into(), m.subject.clone()));
    out.push(("Thread-Topic".into(), m.thread_topic.clone()));
    out.push(("Date".into(), rfc2822(m.sent.unwrap_or(m.created))));
    out.push(("Message-ID".into(), m.internet_message_id.clone()));
    if let Some(r) = &m.in_reply_to {
        out.push(("In-Reply-To".into(), r.clone()));
    }
    out.push(("Content-Language".into(), "en-US".into()));
    out.push((
        "X-MS-Has-Attach".into(),
        if m.has_attachments() { "yes" } else { "" }.into(),
    ));
    out.push(("MIME-Version".into(), "1.0".into()));
    out
}

fn bare(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn addrs(v: &[Addr]) -> Address<'static> {
    Address::new_list(
        v.iter()
            .map(|a| {
                Address::new_address(
                    (!a.name.is_empty()).then(|| a.name.clone()),
                    a.address.clone(),
                )
            })
            .collect(),
    )
}

/// The message's MIME (`$value`): the upload verbatim, or rendered.
pub fn render(sim: &Sim, mb: &Mailbox, m: &Msg) -> Vec<u8> {
    if let Some(raw) = &m.raw {
        return raw.as_ref().clone();
    }
    let tag = hexlabel(&[&m.internet_message_id]);
    let boundary = |level: u32| format!("_{level:03}_{}_", &tag[..32]);
    let mut b = MessageBuilder::new();
    for (name, value) in delivery_headers(sim, mb, m) {
        b = b.header(name, Raw::new(value));
    }
    b = b.from(addrs(std::slice::from_ref(&m.from)));
    if m.sender != m.from {
        b = b.sender(addrs(std::slice::from_ref(&m.sender)));
    }
    if !m.to.is_empty() {
        b = b.to(addrs(&m.to));
    }
    if !m.cc.is_empty() {
        b = b.cc(addrs(&m.cc));
    }
    if !m.bcc.is_empty() && m.delivery.is_none() {
        b = b.bcc(addrs(&m.bcc));
    }
    if !m.reply_to.is_empty() {
        b = b.reply_to(addrs(&m.reply_to));
    }
    b = b
        .subject(Text::new(m.subject.clone()))
        .header("Thread-Topic", Text::new(m.thread_topic.clone()));
    use base64::Engine;
    b = b.header(
        "Thread-Index",
        Raw::new(base64::engine::general_purpose::STANDARD.encode(&m.conversation_index)),
    );
    b = b
        .date(m.sent.unwrap_or(m.created).timestamp())
        .message_id(bare(&m.internet_message_id));
    if let Some(r) = &m.in_reply_to {
        b = b.in_reply_to(bare(r));
    }
    if !m.references.is_empty() {
        b = b.references(MessageId::new_list(m.references.iter().map(|r| bare(r))));
    }
    if m.importance != "normal" {
        b = b.header("Importance", Raw::new(m.importance.clone()));
    }
    if !m.categories.is_empty() {
        b = b.header("Keywords", Text::new(m.categories.join(", ")));
    }
    b = b
        .header("Content-Language", Raw::new("en-US"))
        .header(
            "X-MS-Has-Attach",
            Raw::new(if m.has_attachments() { "yes" } else { "" }),
        )
        .header("MIME-Version", Raw::new("1.0"));
    let (text, html) = body_texts(sim, m);
    let mut part = MimePart::new(
        ContentType::new("multipart/alternative").attribute("boundary", boundary(0)),
        vec![
            MimePart::new("text/plain", text),
            MimePart::new("text/html", html),
        ],
    );
    let inline: Vec<&Att> = m.atts.iter().filter(|a| a.inline).collect();
    if !inline.is_empty() {
        let mut parts = vec![part];
        for a in inline {
            let bytes = att_bytes(sim, a).as_ref().clone();
            let mut p = MimePart::new(
                ContentType::new(a.content_type.clone()).attribute("name", a.name.clone()),
                bytes,
            );
            p = p.header(
                "Content-Disposition",
                ContentType::new("inline").attribute("filename", a.name.clone()),
            );
            if let Some(cid) = &a.content_id {
                p = p.cid(cid.clone());
            }
            parts.push(p);
        }
        part = MimePart::new(
            ContentType::new("multipart/related")
                .attribute("boundary", boundary(1))
                .attribute("type", "multipart/alternative"),
            parts,
        );
    }
    let files: Vec<&Att> = m.atts.iter().filter(|a| !a.inline).collect();
    if !files.is_empty() {
        let mut parts = vec![part];
        for a in files {
            let bytes = att_bytes(sim, a).as_ref().clone();
            parts.push(
                MimePart::new(
                    ContentType::new(a.content_type.clone()).attribute("name", a.name.clone()),
                    bytes,
                )
                .attachment(a.name.clone()),
            );
        }
        part = MimePart::new(
            ContentType::new("multipart/mixed").attribute("boundary", boundary(2)),
            parts,
        );
    }
    b.body(part).write_to_vec().unwrap_or_default()
}

/// What an uploaded MIME message holds.
pub struct Parsed {
    pub subject: String,
    pub from: Option<Addr>,
    pub sender: Option<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub bcc: Vec<Addr>,
    pub reply_to: Vec<Addr>,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub date: Option<DateTime<Utc>>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub importance: Option<String>,
    pub attachments: Vec<ParsedAttachment>,
}

/// An attachment of an uploaded MIME message.
pub struct ParsedAttachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub inline: bool,
    pub content_id: Option<String>,
}

fn parsed_addrs(a: Option<&mail_parser::Address<'_>>) -> Vec<Addr> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| {
                let address = x.address()?.to_string();
                Some(Addr::new(
                    x.name()
                        .map(str::to_string)
                        .unwrap_or_else(|| address.clone()),
                    address,
                ))
            })
            .collect()
    })
    .unwrap_or_default()
}

fn header_ids(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    if let Some(list) = v.as_text_list() {
        return list.iter().map(|s| format!("<{s}>")).collect();
    }
    v.as_text()
        .map(|s| vec![format!("<{s}>")])
        .unwrap_or_default()
}

pub fn parse(bytes: &[u8]) -> Option<Parsed> {
    let msg = MessageParser::default().parse(bytes)?;
    if msg.headers().is_empty() {
        return None;
    }
    let attachments = msg
        .attachments()
        .map(|p| {
            let ct = p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{}", c.ctype(), s),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into());
            let inline = p
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("inline"));
            ParsedAttachment {
                name: p.attachment_name().unwrap_or("attachment").to_string(),
                content_type: ct,
                bytes: p.contents().to_vec(),
                inline: inline && p.content_id().is_some(),
                content_id: p.content_id().map(str::to_string),
            }
        })
        .collect();
    let importance = msg
        .header_raw("Importance")
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| matches!(s.as_str(), "low" | "normal" | "high"));
    Some(Parsed {
        subject: msg.subject().unwrap_or("").to_string(),
        from: parsed_addrs(msg.from()).into_iter().next(),
        sender: parsed_addrs(msg.sender()).into_iter().next(),
        to: parsed_addrs(msg.to()),
        cc: parsed_addrs(msg.cc()),
        bcc: parsed_addrs(msg.bcc()),
        reply_to: parsed_addrs(msg.reply_to()),
        message_id: msg.message_id().map(|s| format!("<{s}>")),
        in_reply_to: header_ids(msg.in_reply_to()).into_iter().next(),
        references: header_ids(msg.references()),
        date: msg
            .date()
            .and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single()),
        text: msg.body_text(0).map(|s| s.to_string()),
        html: msg.body_html(0).map(|s| s.to_string()),
        importance,
        attachments,
    })
}
