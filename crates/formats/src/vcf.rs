//! vCard 4.0 (RFC 6350) from Microsoft Graph contact JSON.
//!
//! The format is a handful of escaped, folded text lines; no maintained
//! crate writes 4.0 with less code than this, so the writer is ours and the
//! tests parse its output back with an independent parser.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum VcfError {
    #[error("contact {0}: no name, company or e-mail address to show")]
    Empty(String),
}

/// RFC 6350 3.4: backslash, comma, semicolon and newline are escaped in values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// RFC 6350 3.2: lines longer than 75 octets are folded (CRLF + space),
/// never inside a UTF-8 sequence.
fn push_line(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn strings<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn address(out: &mut String, kind: &str, a: &Value) {
    let parts = ["street", "city", "state", "postalCode", "countryOrRegion"]
        .map(|k| text(a, k).map(escape).unwrap_or_default());
    if parts.iter().any(|p| !p.is_empty()) {
        // ADR: PO box; extended; street; locality; region; code; country.
        push_line(
            out,
            &format!(
                "ADR;TYPE={kind}:;;{};{};{};{};{}",
                parts[0], parts[1], parts[2], parts[3], parts[4]
            ),
        );
    }
}

/// One vCard 4.0 for a Graph contact.
pub fn contact_to_vcard(contact: &Value) -> Result<String, VcfError> {
    let id = text(contact, "id").unwrap_or("?");
    let given = text(contact, "givenName");
    let surname = text(contact, "surname");
    let emails: Vec<&str> = contact
        .get("emailAddresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| text(e, "address"))
        .collect();
    let joined = [given, surname]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let full_name = text(contact, "displayName")
        .map(str::to_string)
        .or_else(|| (!joined.is_empty()).then_some(joined))
        .or_else(|| text(contact, "companyName").map(str::to_string))
        .or_else(|| emails.first().map(|e| e.to_string()))
        .ok_or_else(|| VcfError::Empty(id.to_string()))?;

    let mut out = String::new();
    push_line(&mut out, "BEGIN:VCARD");
    push_line(&mut out, "VERSION:4.0");
    push_line(&mut out, &format!("FN:{}", escape(&full_name)));
    let n = [
        surname,
        given,
        text(contact, "middleName"),
        text(contact, "title"),
        text(contact, "generation"),
    ]
    .map(|p| p.map(escape).unwrap_or_default());
    push_line(&mut out, &format!("N:{}", n.join(";")));
    if let Some(nick) = text(contact, "nickName") {
        push_line(&mut out, &format!("NICKNAME:{}", escape(nick)));
    }
    for (i, email) in emails.iter().enumerate() {
        let pref = if i == 0 { ";PREF=1" } else { "" };
        push_line(&mut out, &format!("EMAIL{pref}:{}", escape(email)));
    }
    if let Some(m) = text(contact, "mobilePhone") {
        push_line(
            &mut out,
            &format!("TEL;VALUE=uri;TYPE=cell:tel:{}", escape(m)),
        );
    }
    for p in strings(contact, "businessPhones") {
        push_line(
            &mut out,
            &format!("TEL;VALUE=uri;TYPE=work:tel:{}", escape(p.trim())),
        );
    }
    for p in strings(contact, "homePhones") {
        push_line(
            &mut out,
            &format!("TEL;VALUE=uri;TYPE=home:tel:{}", escape(p.trim())),
        );
    }
    if let Some(company) = text(contact, "companyName") {
        let department = text(contact, "department")
            .map(|d| format!(";{}", escape(d)))
            .unwrap_or_default();
        push_line(&mut out, &format!("ORG:{}{department}", escape(company)));
    }
    if let Some(title) = text(contact, "jobTitle") {
        push_line(&mut out, &format!("TITLE:{}", escape(title)));
    }
    if let Some(birthday) = text(contact, "birthday").and_then(|b| b.get(..10)) {
        push_line(&mut out, &format!("BDAY:{}", birthday.replace('-', "")));
    }
    for (key, kind) in [
        ("businessAddress", "work"),
        ("homeAddress", "home"),
        ("otherAddress", "postal"),
    ] {
        if let Some(a) = contact.get(key) {
            address(&mut out, kind, a);
        }
    }
    if let Some(notes) = text(contact, "personalNotes") {
        push_line(&mut out, &format!("NOTE:{}", escape(notes)));
    }
    if let Some(uid) = text(contact, "id") {
        push_line(
            &mut out,
            &format!("UID:urn:x-lifeboat:contact:{}", escape(uid)),
        );
    }
    push_line(&mut out, "END:VCARD");
    Ok(out)
}

/// Several contacts in one .vcf file.
pub fn contacts_to_vcf(contacts: &[Value]) -> Result<String, VcfError> {
    let mut out = String::new();
    for c in contacts {
        out.push_str(&contact_to_vcard(c)?);
    }
    Ok(out)
}
