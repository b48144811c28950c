//! Content-defined chunking (FastCDC 2020) with a per-account gear seed.

use crate::repo::ChunkerParams;
use fastcdc::v2020::{FastCDC, Normalization};
use std::ops::Range;

/// Cut `data` into chunks. If `eof` is false, the last chunk is not final
/// (more input may extend it) and is left out; the returned offset is where
/// the caller must resume. FastCDC cut points depend only on the bytes from
/// the start of the current chunk, so resuming there reproduces exactly the
/// chunks a single pass over the whole stream would give.
pub(crate) fn cut(
    params: &ChunkerParams,
    seed: u64,
    data: &[u8],
    eof: bool,
) -> (Vec<Range<usize>>, usize) {
    if data.is_empty() {
        return (Vec::new(), 0);
    }
    let cdc = FastCDC::with_level_and_seed(
        data,
        params.min,
        params.avg,
        params.max,
        Normalization::Level1,
        seed,
    );
    let mut out: Vec<Range<usize>> = cdc.map(|c| c.offset..c.offset + c.length).collect();
    if !eof {
        out.pop();
    }
    let consumed = out.last().map(|r| r.end).unwrap_or(0);
    (out, consumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_cut_matches_one_pass() {
        let params = ChunkerParams {
            min: 256,
            avg: 1024,
            max: 4096,
        };
        let mut x: u64 = 7;
        let data: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 7) as u8
            })
            .collect();
        let (whole, _) = cut(&params, 42, &data, true);
        let mut streamed = Vec::new();
        let mut start = 0;
        while start < data.len() {
            let end = (start + 10_000).min(data.len());
            let eof = end == data.len();
            let (ranges, consumed) = cut(&params, 42, &data[start..end], eof);
            streamed.extend(ranges.into_iter().map(|r| r.start + start..r.end + start));
            start += if eof { end - start } else { consumed };
        }
        assert_eq!(whole, streamed);
        assert!(whole.len() > 20);
        let (other_seed, _) = cut(&params, 43, &data, true);
        assert_ne!(whole, other_seed, "the seed must change cut points");
    }
}
