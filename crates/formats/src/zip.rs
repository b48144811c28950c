//! Streamed ZIP export (drives, sites, teams): each file is copied from a
//! reader straight into the archive, so memory stays flat whatever the size;
//! entries switch to ZIP64 when they may pass 4 GiB.

use std::io::{self, Read, Seek, Write};

use chrono::{DateTime, Datelike, Timelike, Utc};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

#[derive(Debug, thiserror::Error)]
pub enum ZipExportError {
    #[error("ZIP output failed: {0}")]
    Io(#[from] io::Error),
    #[error("ZIP archive error: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("invalid path in archive: {0:?}")]
    InvalidPath(String),
}

/// Entries at or above this size (or of unknown size) are written as ZIP64.
const ZIP64_THRESHOLD: u64 = 0xFFFF_FFFF;

pub struct ZipExport<W: Write + Seek> {
    zip: ZipWriter<W>,
    force_zip64: bool,
}

fn zip_time(t: DateTime<Utc>) -> zip::DateTime {
    zip::DateTime::from_date_and_time(
        t.year().clamp(1980, 2107) as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .unwrap_or_default()
}

fn check_path(path: &str) -> Result<(), ZipExportError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.split('/').any(|p| p == ".." || p == ".");
    if bad {
        Err(ZipExportError::InvalidPath(path.to_string()))
    } else {
        Ok(())
    }
}

impl<W: Write + Seek> ZipExport<W> {
    pub fn new(out: W) -> Self {
        Self {
            zip: ZipWriter::new(out),
            force_zip64: false,
        }
    }

    /// Writes every entry as ZIP64, whatever its size (for tests and for
    /// consumers that want uniform archives).
    pub fn force_zip64(mut self, on: bool) -> Self {
        self.force_zip64 = on;
        self
    }

    /// Adds a file, streaming `data`. `size` (when known) decides ZIP64;
    /// unknown sizes get ZIP64 so that large files never fail half-way.
    pub fn add_file(
        &mut self,
        path: &str,
        size: Option<u64>,
        modified: DateTime<Utc>,
        mut data: impl Read,
    ) -> Result<u64, ZipExportError> {
        check_path(path)?;
        let large = self.force_zip64 || size.is_none_or(|s| s >= ZIP64_THRESHOLD);
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(zip_time(modified))
            .large_file(large);
        self.zip.start_file(path, options)?;
        Ok(io::copy(&mut data, &mut self.zip)?)
    }

    /// Starts a file whose bytes are then given with [`Self::write_chunk`]
    /// (for data that arrives in pieces, such as an async stream).
    pub fn begin_file(
        &mut self,
        path: &str,
        size: Option<u64>,
        modified: DateTime<Utc>,
    ) -> Result<(), ZipExportError> {
        check_path(path)?;
        let large = self.force_zip64 || size.is_none_or(|s| s >= ZIP64_THRESHOLD);
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(zip_time(modified))
            .large_file(large);
        self.zip.start_file(path, options)?;
        Ok(())
    }

    /// Appends bytes to the file started last.
    pub fn write_chunk(&mut self, data: &[u8]) -> Result<(), ZipExportError> {
        self.zip.write_all(data)?;
        Ok(())
    }

    /// Drops the file started last (its data could not all be read), so
    /// the archive holds no truncated entry.
    pub fn abort_file(&mut self) -> Result<(), ZipExportError> {
        self.zip.abort_file()?;
        Ok(())
    }

    pub fn add_directory(&mut self, path: &str) -> Result<(), ZipExportError> {
        check_path(path.trim_end_matches('/'))?;
        self.zip.add_directory(path, SimpleFileOptions::default())?;
        Ok(())
    }

    pub fn finish(self) -> Result<W, ZipExportError> {
        Ok(self.zip.finish()?)
    }
}
