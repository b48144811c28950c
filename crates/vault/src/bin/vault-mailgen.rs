//! Generates a mail-like corpus for benchmarks: MIME messages in mailbox
//! folders, where attachments repeat across mailboxes (the same file sent
//! to many people, forwarded, re-sent) and messages are delivered to several
//! mailboxes, as real mail is.
//!
//! `vault-mailgen generate DIR --bytes N [--seed S]`
//! `vault-mailgen mutate DIR --percent P [--seed S]`   (changes P% of items)

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::path::{Path, PathBuf};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_lines(data: &[u8], out: &mut Vec<u8>) {
    let mut line = 0;
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        let chars = [
            B64[(n >> 18) as usize & 63],
            B64[(n >> 12) as usize & 63],
            if c.len() > 1 {
                B64[(n >> 6) as usize & 63]
            } else {
                b'='
            },
            if c.len() > 2 {
                B64[n as usize & 63]
            } else {
                b'='
            },
        ];
        out.extend_from_slice(&chars);
        line += 4;
        if line == 76 {
            out.extend_from_slice(b"\r\n");
            line = 0;
        }
    }
    out.extend_from_slice(b"\r\n");
}

struct Words(Vec<String>);

impl Words {
    fn new(rng: &mut StdRng) -> Self {
        let syl = [
            "ka", "to", "ri", "men", "sa", "lo", "ver", "dan", "qu", "is", "tra", "po", "le",
            "nor", "xi", "be",
        ];
        Words(
            (0..3000)
                .map(|_| {
                    (0..rng.random_range(1..4))
                        .map(|_| syl[rng.random_range(0..syl.len())])
                        .collect()
                })
                .collect(),
        )
    }
    fn text(&self, rng: &mut StdRng, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes + 80);
        let mut col = 0;
        while s.len() < bytes {
            // Zipf-like word choice.
            let i = ((rng.random::<f64>().powi(3)) * self.0.len() as f64) as usize;
            s.push_str(&self.0[i.min(self.0.len() - 1)]);
            col += self.0[i.min(self.0.len() - 1)].len() + 1;
            if col > 70 {
                s.push_str("\r\n");
                col = 0;
            } else {
                s.push(' ');
            }
        }
        s
    }
}

struct Attachment {
    name: String,
    mime: &'static str,
    data: Vec<u8>,
}

fn make_attachment(rng: &mut StdRng, words: &Words, i: usize) -> Attachment {
    // Log-uniform size 10 kB .. 1.5 MB.
    let size = (10_000f64 * (150f64).powf(rng.random::<f64>())) as usize;
    match rng.random_range(0..3) {
        0 => {
            // Photo: incompressible.
            let mut data = vec![0u8; size];
            rng.fill_bytes(&mut data);
            Attachment {
                name: format!("IMG_{i:04}.jpg"),
                mime: "image/jpeg",
                data,
            }
        }
        1 => {
            // PDF-like: text streams mixed with binary.
            let mut data = b"%PDF-1.7\n".to_vec();
            while data.len() < size {
                if rng.random_bool(0.5) {
                    data.extend_from_slice(words.text(rng, 4000).as_bytes());
                } else {
                    let mut b = vec![0u8; 3000];
                    rng.fill_bytes(&mut b);
                    data.extend_from_slice(&b);
                }
            }
            data.truncate(size);
            Attachment {
                name: format!("report-{i}.pdf"),
                mime: "application/pdf",
                data,
            }
        }
        _ => {
            // Office document / spreadsheet: text-heavy.
            let data = words.text(rng, size).into_bytes();
            Attachment {
                name: format!("sheet-{i}.xlsx"),
                mime: "application/vnd.ms-excel",
                data,
            }
        }
    }
}

fn message(rng: &mut StdRng, words: &Words, pool: &[Attachment], to: &str, id: u64) -> Vec<u8> {
    let mut m = Vec::new();
    let from = format!("user{}@example.com", rng.random_range(0..500));
    let boundary = format!("=_b{id:x}");
    m.extend_from_slice(
        format!(
            "Received: from mx{}.example.net by mail.example.com; {}\r\nMessage-ID: <{id:x}@example.com>\r\nFrom: {from}\r\nTo: {to}\r\nSubject: {}\r\nDate: Mon, {} Nov 2026 10:{:02}:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
            rng.random_range(1..9),
            id,
            words.text(rng, 40).trim(),
            rng.random_range(1..29),
            rng.random_range(0..60)
        )
        .as_bytes(),
    );
    let body_len = rng.random_range(300..12_000);
    m.extend_from_slice(words.text(rng, body_len).as_bytes());
    // A third of messages carry attachments; popular ones repeat a lot.
    if rng.random_bool(0.25) {
        for _ in 0..rng.random_range(1..3) {
            let i = ((rng.random::<f64>().powi(2)) * pool.len() as f64) as usize;
            let a = &pool[i.min(pool.len() - 1)];
            m.extend_from_slice(
                format!(
                    "\r\n--{boundary}\r\nContent-Type: {}; name=\"{}\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{}\"\r\n\r\n",
                    a.mime, a.name, a.name
                )
                .as_bytes(),
            );
            base64_lines(&a.data, &mut m);
        }
    }
    m.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    m
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: vault-mailgen generate DIR --bytes N [--seed S] | mutate DIR --percent P [--seed S]";
    let (mode, dir) = match (args.get(1), args.get(2)) {
        (Some(m), Some(d)) => (m.clone(), PathBuf::from(d)),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let seed: u64 = arg(&args, "--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut rng = StdRng::seed_from_u64(seed);
    let words = Words::new(&mut StdRng::seed_from_u64(0));
    let pool: Vec<Attachment> = {
        let mut r = StdRng::seed_from_u64(12345);
        (0..300)
            .map(|i| make_attachment(&mut r, &words, i))
            .collect()
    };
    match mode.as_str() {
        "generate" => {
            let target: u64 = arg(&args, "--bytes")
                .and_then(|s| s.parse().ok())
                .expect(usage);
            let mailboxes = 40;
            let mut total = 0u64;
            let mut id = seed << 32;
            let mut count = 0u64;
            while total < target {
                id += 1;
                let n_rcpt = if rng.random_bool(0.3) {
                    rng.random_range(2..6)
                } else {
                    1
                };
                let first = rng.random_range(0..mailboxes);
                for k in 0..n_rcpt {
                    let mb = (first + k * 7) % mailboxes;
                    let to = format!("user{mb}@example.com");
                    // Each delivered copy has its own headers; body and
                    // attachments are the same.
                    let mut r2 = StdRng::seed_from_u64(id);
                    let msg = message(&mut r2, &words, &pool, &to, id);
                    let folder = ["Inbox", "Archive", "Sent Items", "Projects"][(id % 4) as usize];
                    let path = dir.join(format!("user{mb}/{folder}/{id:x}.eml"));
                    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                    std::fs::write(&path, &msg).expect("write");
                    total += msg.len() as u64;
                    count += 1;
                }
            }
            eprintln!(
                "generated {count} messages, {:.1} MB in {}",
                total as f64 / 1e6,
                dir.display()
            );
        }
        "mutate" => {
            let percent: f64 = arg(&args, "--percent")
                .and_then(|s| s.parse().ok())
                .expect(usage);
            let all = files(&dir);
            let n = ((all.len() as f64) * percent / 100.0).ceil() as usize;
            let mut changed = 0;
            for _ in 0..n {
                let p = &all[rng.random_range(0..all.len())];
                if !p.exists() {
                    continue; // moved by an earlier mutation
                }
                match rng.random_range(0..3) {
                    // Flag change: a header added (as a mail client would).
                    0 => {
                        let mut data = std::fs::read(p).expect("read");
                        let mut new = b"X-Flag: read\r\n".to_vec();
                        new.append(&mut data);
                        std::fs::write(p, new).expect("write");
                    }
                    // Moved to another folder.
                    1 => {
                        let dest = p
                            .parent()
                            .expect("parent")
                            .parent()
                            .expect("mailbox")
                            .join("Deleted Items");
                        std::fs::create_dir_all(&dest).expect("mkdir");
                        let _ = std::fs::rename(p, dest.join(p.file_name().expect("name")));
                    }
                    // New message arrives.
                    _ => {
                        let id = rng.random::<u64>();
                        let msg = message(
                            &mut StdRng::seed_from_u64(id),
                            &words,
                            &pool,
                            "new@example.com",
                            id,
                        );
                        std::fs::write(p.with_file_name(format!("{id:x}.eml")), msg)
                            .expect("write");
                    }
                }
                changed += 1;
            }
            eprintln!("mutated {changed} of {} items", all.len());
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
