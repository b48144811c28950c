//! PST write throughput on one core and peak memory.
//!
//! `cargo bench -p formats --bench pst` writes a generated mailbox of
//! PST_BENCH_MB megabytes (default 2048) into a sink that only counts bytes
//! (CPU cost of the writer alone); set PST_BENCH_FILE=/path/out.pst to write
//! a real file instead. Prints MB/s and the process's peak RSS.

use std::io::{self, Seek, SeekFrom, Write};
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use formats::pst::{Attachment, Mailbox, Message, PstWriter};

/// A Write + Seek that keeps nothing: what the writer costs without the disk.
#[derive(Default)]
struct CountingSink {
    pos: u64,
    len: u64,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pos += buf.len() as u64;
        self.len = self.len.max(self.pos);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for CountingSink {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => self.len.saturating_add_signed(d),
            SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
    }
}

fn peak_rss_mib() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    usage.ru_maxrss as f64 / 1024.0 // kilobytes on Linux
}

fn run<W: Write + Seek>(
    out: W,
    target_bytes: u64,
) -> (u64, u64, std::time::Duration, (usize, usize)) {
    let start = Instant::now();
    let mut pst = PstWriter::create(out).expect("writer");
    let mut folders = Vec::new();
    for year in 2019..2026 {
        let y = pst
            .add_folder(pst.root(), &format!("Archive {year}"), "IPF.Note")
            .expect("folder");
        for month in 1..=12 {
            folders.push(
                pst.add_folder(y, &format!("{month:02}"), "IPF.Note")
                    .expect("folder"),
            );
        }
    }
    let attachment: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let body = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(36);
    let html = format!(
        "<html><body><p>{}</p></body></html>",
        body.replace(". ", ".</p><p>")
    );
    let t0 = Utc
        .with_ymd_and_hms(2019, 1, 1, 0, 0, 0)
        .single()
        .expect("time");
    let mut message = Message {
        from: Some(Mailbox::new("Sender Name", "sender@example.com")),
        to: vec![
            Mailbox::new("First Recipient", "one@example.com"),
            Mailbox::new("Second Recipient", "two@example.com"),
        ],
        body_text: Some(body),
        body_html: Some(html),
        ..Default::default()
    };
    let mut payload = 0u64;
    let mut n = 0u64;
    while pst.bytes_written() < target_bytes {
        message.subject = format!("Generated message number {n}");
        message.sent = Some(t0 + Duration::minutes(n as i64));
        message.attachments.clear();
        if n.is_multiple_of(4) {
            message.attachments.push(Attachment {
                name: format!("file{n}.bin"),
                mime_type: "application/octet-stream".into(),
                data: attachment.clone(),
            });
        }
        payload += message.subject.len() as u64
            + message.body_text.as_ref().map_or(0, |b| b.len() as u64)
            + message.body_html.as_ref().map_or(0, |b| b.len() as u64)
            + message
                .attachments
                .iter()
                .map(|a| a.data.len() as u64)
                .sum::<u64>();
        pst.add_message(folders[(n % folders.len() as u64) as usize], &message)
            .expect("message");
        n += 1;
    }
    let index = pst.index_entries();
    let written = pst.bytes_written();
    pst.finish().expect("finish");
    let _ = payload;
    (n, written, start.elapsed(), index)
}

fn main() {
    let mb: u64 = std::env::var("PST_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let target = mb * 1_000_000;
    let (items, written, elapsed, (blocks, nodes)) = match std::env::var("PST_BENCH_FILE") {
        Ok(path) => run(
            io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(&path).expect("bench file"),
            ),
            target,
        ),
        Err(_) => run(CountingSink::default(), target),
    };
    let secs = elapsed.as_secs_f64();
    println!(
        "pst: {items} messages, {:.0} MB written in {secs:.1} s on one core: {:.0} MB/s",
        written as f64 / 1e6,
        written as f64 / 1e6 / secs
    );
    println!(
        "pst: {blocks} blocks and {nodes} nodes indexed; peak RSS {:.0} MiB",
        peak_rss_mib()
    );
}
