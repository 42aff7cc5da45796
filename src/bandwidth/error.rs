//! Errors of the bandwidth package limiter and its plot.

use std::path::PathBuf;

/// Why a [`Limiter`](super::Limiter) could not be built from a bandwidth package.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BandwidthError {
    /// A rate of 0 would stall every shaped packet forever and divide by zero when computing waits.
    #[error("bandwidth package: rate is 0 bit/s; the package needs a positive bandwidth_mbps")]
    ZeroRate,
    /// A bucket of 0 bytes can never hold the cost of a packet, so a policer would drop everything.
    #[error(
        "bandwidth package: burst is 0 bytes; set burst_bytes to at least one full frame (1538) or leave it out"
    )]
    ZeroBurst,
    /// Statistics intervals must have a length, or no packet could be placed in one.
    #[error("bandwidth statistics: interval is 0 ns; use at least 1 ns (the default is 100 ms)")]
    ZeroInterval,
}

/// Why [`write_svg`](super::write_svg) could not produce its file.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Creating, writing or renaming the file failed.
    #[error("bandwidth plot {path}: {source}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The plotting library refused to draw.
    #[error("bandwidth plot {path}: drawing failed: {message}")]
    Draw {
        /// The destination file.
        path: PathBuf,
        /// The plotting library's message.
        message: String,
    },
}
